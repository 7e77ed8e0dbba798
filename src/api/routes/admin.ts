/**
 * Configuration and audit: the effective configuration with secrets masked (config/masked.ts, as
 * `mailbridge config show`), validation of a candidate mailbridge.yaml with the same analysis as
 * `mailbridge config check` (every problem with path, line, MB code, cause and fix), the file as
 * written with its secrets masked for the console's editor (a mask sent back keeps the stored
 * value), and the audit
 * log of changes made through this API.
 */
import { z } from 'zod';
import { makeProblem, type ConfigProblem } from '../../config/problems.ts';
import type { ResolvedCandidate } from '../../config/secret-file.ts';
import type { Lang } from '../../i18n/index.ts';
import type { AuditLog } from '../audit.ts';
import { need, type ApiContext } from '../context.ts';
import { route, routeGroup, type RouteSpec } from '../route.ts';

const problemSchema = z.object({
  severity: z.enum(['error', 'warning']),
  path: z.string().meta({ description: "Dotted path in the file, '' for the file as a whole" }),
  line: z.int().optional(),
  column: z.int().optional(),
  code: z.string(),
  title: z.string(),
  cause: z.string(),
  fix: z.string(),
});

function problemView(p: ConfigProblem, lang: Lang): z.infer<typeof problemSchema> {
  return {
    severity: p.severity,
    path: p.path,
    ...(p.line !== undefined ? { line: p.line } : {}),
    ...(p.column !== undefined ? { column: p.column } : {}),
    code: p.code,
    title: p.title[lang],
    cause: p.message[lang],
    fix: p.fix[lang],
  };
}

/**
 * The problems of an editor's candidate as apply judges it: a mask where the file has no value is an
 * error at its line; a secret typed in clear is sealed by apply when the gateway has a key (no
 * plain-text warning then), and refused by apply when it has none (an error here too).
 */
function candidateProblems(resolved: ResolvedCandidate, report: { errors: ConfigProblem[]; warnings: ConfigProblem[] }): { errors: ConfigProblem[]; warnings: ConfigProblem[] } {
  const errors = [...report.errors];
  for (const u of resolved.unresolved) {
    errors.push(makeProblem('error', 'MB_API_CONFIG_MASK_NEW', u.path, { field: u.path }, { ...(u.line !== undefined ? { line: u.line } : {}), ...(u.column !== undefined ? { column: u.column } : {}) }));
  }
  const warnings: ConfigProblem[] = [];
  for (const w of report.warnings) {
    if (w.code !== 'MB_CONFIG_SECRET_PLAINTEXT' || !resolved.typed.includes(w.path)) warnings.push(w);
    else if (!resolved.keyAvailable) errors.push({ ...makeProblem('error', 'MB_API_CONFIG_SECRET_CLEAR', w.path, { fields: w.path, first: w.path }), ...(w.line !== undefined ? { line: w.line } : {}), ...(w.column !== undefined ? { column: w.column } : {}) });
  }
  return { errors, warnings };
}

const auditEntrySchema = z.object({
  at: z.iso.datetime(),
  who: z.string().meta({ description: 'The API key’s name' }),
  action: z.string().meta({ description: 'Method and route, e.g. POST /api/v1/relay/queue/{id}/retry' }),
  target: z.string().optional(),
  status: z.int(),
  code: z.string().optional().meta({ description: 'MB code when the change was refused or failed' }),
});

/** A whole mailbridge.yaml in a request body (validate, apply). */
export const configFileText = z.string().max(1024 * 1024).meta({ description: 'The whole file' });
/** Room for configFileText with JSON's escapes. */
export const CONFIG_BODY_LIMIT = 2 * 1024 * 1024;

/** The gateway's configuration tools; an API without them (tests, the CLI's) answers 404 MB_API_NOT_CONFIGURED. */
export function configToolsOf(ctx: ApiContext, path: string): NonNullable<ApiContext['configTools']> {
  return need(ctx.configTools, 'the configuration tools of the gateway', path);
}

/** Configuration is an admin's (reading the effective one aside); without the tools every route answers 404. */
export const configRoute = routeGroup({ tag: 'config', scope: 'admin', errors: [404] });

export function adminRoutes(ctx: ApiContext, audit: AuditLog): RouteSpec[] {
  return [
    configRoute.get('/api/v1/config', {
      scope: 'read',
      summary: { en: 'The effective configuration, secrets masked', de: 'Die wirksame Konfiguration, Geheimnisse maskiert' },
      status: 200,
      response: z.object({
        config: z.record(z.string(), z.unknown()),
        secrets: z.array(z.object({ path: z.string(), encrypted: z.boolean(), unreadable: z.string().optional() })),
      }),
      async handler({ req }) {
        return configToolsOf(ctx, req.url).masked();
      },
    }),
    configRoute.get('/api/v1/config/file', {
      summary: {
        en: 'mailbridge.yaml as written (comments and order kept), every secret and password hash shown as ******** (sent back unchanged, it keeps the stored value)',
        de: 'mailbridge.yaml wie geschrieben (Kommentare und Reihenfolge bleiben), jedes Geheimnis und jeder Passwort-Hash als ******** (unverändert zurückgeschickt, bleibt der gespeicherte Wert)',
      },
      status: 200,
      response: z.object({ path: z.string().meta({ description: 'Where the file is on the gateway host' }), text: z.string() }),
      async handler({ req }) {
        return configToolsOf(ctx, req.url).file();
      },
    }),
    configRoute.post('/api/v1/config/validate', {
      summary: {
        en: 'Check a candidate mailbridge.yaml: every problem with path, line, MB code, cause and fix',
        de: 'Eine mögliche mailbridge.yaml prüfen: jedes Problem mit Pfad, Zeile, MB-Code, Ursache und Behebung',
      },
      body: z.object({ yaml: configFileText }).strict(),
      bodyLimit: CONFIG_BODY_LIMIT,
      // Nothing changes: the candidate is analysed, not applied.
      audit: false,
      status: 200,
      response: z.object({ valid: z.boolean(), errors: z.array(problemSchema), warnings: z.array(problemSchema) }),
      async handler({ body, lang, req }) {
        const tools = configToolsOf(ctx, req.url);
        // As apply will see it: each mask stands for the file's value (nothing is sealed here).
        const resolved = await tools.resolve(body.yaml, false);
        const report = tools.check(resolved.text, lang);
        const { errors, warnings } = candidateProblems(resolved, report);
        return { valid: errors.length === 0, errors: errors.map((p) => problemView(p, lang)), warnings: warnings.map((p) => problemView(p, lang)) };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/audit',
      scope: 'admin',
      tag: 'audit',
      summary: { en: 'Changes made through this API: who, what, when, outcome (newest first)', de: 'Änderungen über diese API: wer, was, wann, Ergebnis (neueste zuerst)' },
      query: z.object({
        who: z.string().min(1).max(80).optional().meta({ description: 'Only changes by this key' }),
        since: z.iso.datetime().optional().meta({ description: 'Only changes at or after this time' }),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
      status: 200,
      response: z.object({ entries: z.array(auditEntrySchema) }),
      async handler({ query }) {
        return { entries: await audit.list(query) };
      },
    }),
  ];
}
