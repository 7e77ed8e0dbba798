/**
 * Configuration and audit: the effective configuration with secrets masked (config/masked.ts, as
 * `mailbridge config show`), validation of a candidate mailbridge.yaml with the same analysis as
 * `mailbridge config check` (every problem with path, line, MB code, cause and fix), and the audit
 * log of changes made through this API.
 */
import { z } from 'zod';
import type { ConfigProblem } from '../../config/problems.ts';
import type { Lang } from '../../i18n/index.ts';
import type { AuditLog } from '../audit.ts';
import { need, type ApiContext } from '../context.ts';
import { route, type RouteSpec } from '../route.ts';

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

const auditEntrySchema = z.object({
  at: z.iso.datetime(),
  who: z.string().meta({ description: 'The API key’s name' }),
  action: z.string().meta({ description: 'Method and route, e.g. POST /api/v1/relay/queue/{id}/retry' }),
  target: z.string().optional(),
  status: z.int(),
  code: z.string().optional().meta({ description: 'MB code when the change was refused or failed' }),
});

export function adminRoutes(ctx: ApiContext, audit: AuditLog): RouteSpec[] {
  return [
    route({
      method: 'GET',
      path: '/api/v1/config',
      scope: 'read',
      tag: 'config',
      summary: { en: 'The effective configuration, secrets masked', de: 'Die wirksame Konfiguration, Geheimnisse maskiert' },
      status: 200,
      response: z.object({
        config: z.record(z.string(), z.unknown()),
        secrets: z.array(z.object({ path: z.string(), encrypted: z.boolean(), unreadable: z.string().optional() })),
      }),
      errors: [404],
      async handler({ req }) {
        return need(ctx.configTools, 'the configuration tools of the gateway', req.url).masked();
      },
    }),
    route({
      method: 'POST',
      path: '/api/v1/config/validate',
      scope: 'admin',
      tag: 'config',
      summary: {
        en: 'Check a candidate mailbridge.yaml: every problem with path, line, MB code, cause and fix',
        de: 'Eine mögliche mailbridge.yaml prüfen: jedes Problem mit Pfad, Zeile, MB-Code, Ursache und Behebung',
      },
      body: z.object({ yaml: z.string().max(1024 * 1024).meta({ description: 'The whole file' }) }).strict(),
      bodyLimit: 2 * 1024 * 1024,
      // Nothing changes: the candidate is analysed, not applied.
      audit: false,
      status: 200,
      response: z.object({ valid: z.boolean(), errors: z.array(problemSchema), warnings: z.array(problemSchema) }),
      errors: [404],
      async handler({ body, lang, req }) {
        const report = need(ctx.configTools, 'the configuration tools of the gateway', req.url).check(body.yaml, lang);
        return { valid: report.errors.length === 0, errors: report.errors.map((p) => problemView(p, lang)), warnings: report.warnings.map((p) => problemView(p, lang)) };
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
