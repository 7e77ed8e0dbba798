/**
 * Check runs, setup runs and config apply: what the console's "test" buttons, its setup wizard and
 * its config editor start. A run works in the background; its answer is its ID (202), and GET shows
 * what is known so far, each check result as soon as it is (the console polls, and turns them green
 * one by one). The work itself is the gateway's (ApiContext.ops, bound in src/server/ops.ts to the
 * same functions `mailbridge check` and `mailbridge setup` use).
 *
 * Limits: runs live in this gateway's memory, the last RUNS_KEPT of each kind; a run of another
 * node or from before a restart is gone (404 MB_API_RUN_NOT_FOUND). A run started for a target that
 * already has one running is not started twice: the answer names the running one.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { ConfigProblem } from '../../config/problems.ts';
import { MbError, toMbError } from '../../errors/index.ts';
import type { Lang, Text } from '../../i18n/index.ts';
import { need, type ApiContext, type ApplyResult, type CheckItem } from '../context.ts';
import type { ApiScope } from '../config.ts';
import { routeGroup, type RouteSpec } from '../route.ts';
import { CONFIG_BODY_LIMIT, configFileText, configRoute, configToolsOf } from './admin.ts';

export const RUNS_KEPT = 20;

const iso = z.iso.datetime();
const explained = z.object({ code: z.string(), title: z.string(), cause: z.string(), fix: z.string() });
const connectionName = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected a connection name of letters, digits, . _ -');
const runParams = z.object({ id: z.string().regex(/^[0-9a-f]{16}$/, 'expected a run ID of 16 hexadecimal digits') });

const checkItemSchema = z.object({
  id: z.string().meta({ description: 'connection/check/subject, stable within a run' }),
  title: z.string(),
  status: z.enum(['ok', 'warn', 'fail', 'pending']).meta({ description: 'warn: could not be proven from here (UNVERIFIED in `mailbridge check`); pending: granted, not yet in effect' }),
  code: z.string().optional(),
  cause: z.string().optional(),
  fix: z.string().optional(),
  command: z.string().optional().meta({ description: 'The command of the fix to copy (PowerShell or mailbridge), when it names one' }),
});

const checkRunSchema = z.object({
  id: z.string(),
  connection: z.string().optional().meta({ description: 'Absent: every connection' }),
  state: z.enum(['running', 'done', 'failed']),
  startedAt: iso,
  finishedAt: iso.optional(),
  results: z.array(checkItemSchema),
  error: explained.optional().meta({ description: 'Why the run itself failed' }),
});

const setupStep = z.enum(['signin', 'creating', 'script', 'checking', 'done', 'failed']);
const setupRunSchema = z.object({
  id: z.string(),
  connection: z.string(),
  state: z.enum(['running', 'done', 'failed']),
  step: setupStep,
  startedAt: iso,
  finishedAt: iso.optional(),
  deviceCode: z.object({ userCode: z.string(), verificationUri: z.string() }).optional().meta({ description: 'What the admin enters at verificationUri to sign in (step signin)' }),
  appId: z.string().optional().meta({ description: 'The application (client) ID, once the app exists' }),
  script: z.string().optional().meta({ description: 'The Exchange PowerShell script to run as an Exchange administrator' }),
  checks: z.array(checkItemSchema).optional(),
  error: explained.optional(),
});

interface CheckRun {
  id: string;
  connection?: string;
  state: 'running' | 'done' | 'failed';
  startedAt: number;
  finishedAt?: number;
  results: CheckItem[];
  error?: MbError;
}

interface SetupRun {
  id: string;
  connection: string;
  state: 'running' | 'done' | 'failed';
  step: z.infer<typeof setupStep>;
  startedAt: number;
  finishedAt?: number;
  deviceCode?: { userCode: string; verificationUri: string };
  appId?: string;
  script?: string;
  checks?: CheckItem[];
  error?: MbError;
}

/** The runs of one kind, newest last, at most RUNS_KEPT (finished ones go first). */
class Runs<R extends { id: string; state: string }> {
  private readonly runs = new Map<string, R>();
  /** What MB_API_RUN_NOT_FOUND calls a run of this kind, and the route that lists them. */
  readonly kind: Text;
  readonly path: string;

  constructor(kind: Text, path: string) {
    this.kind = kind;
    this.path = path;
  }

  add(run: R): R {
    this.runs.set(run.id, run);
    for (const [id, r] of this.runs) {
      if (this.runs.size <= RUNS_KEPT) break;
      if (r.state !== 'running') this.runs.delete(id);
    }
    return run;
  }

  get(id: string): R | undefined {
    return this.runs.get(id);
  }

  list(): R[] {
    return [...this.runs.values()].reverse();
  }
}

/** The first command in backquotes of a fix (`Add-MailboxPermission …`, `mailbridge setup`), for the console's copy button. */
export function commandOf(fix: string): string | undefined {
  return /`([^`]+)`/.exec(fix)?.[1];
}

function itemView(item: CheckItem, lang: Lang): z.infer<typeof checkItemSchema> {
  const base = { id: item.id, title: item.title[lang], status: item.status };
  if (!item.error || item.status === 'ok') return base;
  const x = item.error.explain(lang);
  const command = commandOf(x.fix);
  return { ...base, code: x.code, cause: x.cause, fix: x.fix, ...(command ? { command } : {}) };
}

function errorView(e: MbError | undefined, lang: Lang): { error?: z.infer<typeof explained> } {
  if (!e) return {};
  const { code, title, cause, fix } = e.explain(lang);
  return { error: { code, title, cause, fix } };
}

const time = (ms: number | undefined) => (ms === undefined ? {} : { finishedAt: new Date(ms).toISOString() });

function checkRunView(r: CheckRun, lang: Lang): z.infer<typeof checkRunSchema> {
  return {
    id: r.id,
    ...(r.connection !== undefined ? { connection: r.connection } : {}),
    state: r.state,
    startedAt: new Date(r.startedAt).toISOString(),
    ...time(r.finishedAt),
    results: r.results.map((i) => itemView(i, lang)),
    ...errorView(r.error, lang),
  };
}

function setupRunView(r: SetupRun, lang: Lang): z.infer<typeof setupRunSchema> {
  return {
    id: r.id,
    connection: r.connection,
    state: r.state,
    step: r.step,
    startedAt: new Date(r.startedAt).toISOString(),
    ...time(r.finishedAt),
    ...(r.deviceCode ? { deviceCode: r.deviceCode } : {}),
    ...(r.appId !== undefined ? { appId: r.appId } : {}),
    ...(r.script !== undefined ? { script: r.script } : {}),
    ...(r.checks ? { checks: r.checks.map((i) => itemView(i, lang)) } : {}),
    ...errorView(r.error, lang),
  };
}

/** A candidate with errors: the first few, each at its line, in both languages. */
export function configRefused(errors: readonly ConfigProblem[]): MbError {
  const list = (l: Lang) =>
    errors
      .slice(0, 5)
      .map((p) => `${p.line !== undefined ? `${l === 'de' ? 'Zeile' : 'line'} ${p.line} ` : ''}${p.path ? `(${p.path}) ` : ''}${p.code} ${p.title[l]}`)
      .join('; ') + (errors.length > 5 ? ' …' : '');
  return new MbError('MB_API_CONFIG_REFUSED', { count: errors.length, problems: { en: list('en'), de: list('de') } });
}

/** Setting up is an admin's; a check run names the scope it needs (operators start them, readers read them). */
const setupRoute = routeGroup({ tag: 'setup', scope: 'admin' });

/** GET one run by its ID: what is known of it so far; 404 once it is gone (another node, a restart, or older than RUNS_KEPT). */
function runRoute<R extends { id: string; state: string }>(runs: Runs<R>, o: { scope: ApiScope; summary: Text; response: z.ZodType; view: (run: R, lang: Lang) => unknown }): RouteSpec {
  return setupRoute.get(`${runs.path}/{id}`, {
    scope: o.scope,
    summary: o.summary,
    params: runParams,
    status: 200,
    response: o.response,
    errors: [404],
    async handler({ params, lang }) {
      const run = runs.get(params.id);
      if (!run) throw new MbError('MB_API_RUN_NOT_FOUND', { kind: runs.kind, id: params.id, keep: RUNS_KEPT, list: runs.path });
      return o.view(run, lang);
    },
  });
}

function knownConnection(ctx: ApiContext, name: string): void {
  const names = Object.keys(ctx.config.connections);
  if (!names.includes(name)) throw new MbError('MB_API_UNKNOWN_NAME', { kind: { en: 'connection', de: 'Verbindung' }, name, known: names.join(', ') || '–' });
}

export function opsRoutes(ctx: ApiContext): RouteSpec[] {
  const now = () => (ctx.now ?? Date.now)();
  const checks = new Runs<CheckRun>({ en: 'check run', de: 'Prüflauf' }, '/api/v1/check/runs');
  const setups = new Runs<SetupRun>({ en: 'setup run', de: 'Einrichtungslauf' }, '/api/v1/setup/runs');
  const newId = () => randomBytes(8).toString('hex');

  return [
    setupRoute.post('/api/v1/check/runs', {
      scope: 'operate',
      summary: { en: 'Start the checks of `mailbridge check` (one connection, or all) in the background', de: 'Die Prüfungen von `mailbridge check` (eine Verbindung oder alle) im Hintergrund starten' },
      body: z.object({ connection: connectionName.optional().meta({ description: 'Absent: every connection' }) }).strict().default({}),
      status: 202,
      response: z.object({ id: z.string() }),
      errors: [404],
      target: ({ body }) => body.connection ?? '(all)',
      async handler({ body, req }) {
        const tools = need(ctx.ops, 'the check runs of the gateway', req.url);
        if (body.connection !== undefined) knownConnection(ctx, body.connection);
        const running = checks.list().find((r) => r.state === 'running' && r.connection === body.connection);
        if (running) return { id: running.id };
        const run = checks.add({ id: newId(), ...(body.connection !== undefined ? { connection: body.connection } : {}), state: 'running', startedAt: now(), results: [] });
        // The run records how it ended; nothing else waits for it.
        void tools
          .check(body.connection, (item) => run.results.push(item))
          .then(
            () => {
              run.finishedAt = now();
              run.state = 'done';
            },
            (err: unknown) => {
              run.finishedAt = now();
              run.error = toMbError(err);
              run.state = 'failed';
            },
          );
        return { id: run.id };
      },
    }),
    setupRoute.get('/api/v1/check/runs', {
      scope: 'read',
      summary: { en: 'Recent check runs of this gateway, newest first', de: 'Die letzten Prüfläufe dieses Gateways, neueste zuerst' },
      status: 200,
      response: z.object({ runs: z.array(checkRunSchema) }),
      async handler({ lang }) {
        return { runs: checks.list().map((r) => checkRunView(r, lang)) };
      },
    }),
    runRoute(checks, { scope: 'read', summary: { en: 'One check run: its results so far', de: 'Ein Prüflauf: seine bisherigen Ergebnisse' }, response: checkRunSchema, view: checkRunView }),
    setupRoute.post('/api/v1/setup/runs', {
      summary: {
        en: 'Start `mailbridge setup` for a connection: admin sign-in by device code, the app registration, the Exchange script, then the checks',
        de: '`mailbridge setup` für eine Verbindung starten: Anmeldung des Administrators per Gerätecode, App-Registrierung, Exchange-Skript, danach die Prüfungen',
      },
      body: z
        .object({
          connection: connectionName,
          credential: z.enum(['certificate', 'secret']).optional().meta({ description: 'What to create when the connection has no working credential (default certificate); stored sealed in mailbridge.yaml, never returned' }),
        })
        .strict(),
      status: 202,
      response: z.object({ id: z.string() }),
      errors: [404],
      target: ({ body }) => body.connection,
      async handler({ body, lang, req }) {
        const tools = need(ctx.ops, 'the setup runs of the gateway', req.url);
        knownConnection(ctx, body.connection);
        const running = setups.list().find((r) => r.state === 'running' && r.connection === body.connection);
        if (running) return { id: running.id };
        const run = setups.add({ id: newId(), connection: body.connection, state: 'running', step: 'signin', startedAt: now() });
        void tools
          .setup(
            { connection: body.connection, lang, ...(body.credential ? { credential: body.credential } : {}) },
            {
              step: (s) => {
                run.step = s;
                if (s !== 'signin') delete run.deviceCode;
                if (s === 'checking') run.checks = [];
              },
              deviceCode: (c) => {
                run.deviceCode = { userCode: c.userCode, verificationUri: c.verificationUri };
              },
              app: (appId) => {
                run.appId = appId;
              },
              script: (text) => {
                run.script = text;
              },
              check: (item) => (run.checks ??= []).push(item),
            },
          )
          .then(
            () => {
              run.finishedAt = now();
              run.step = 'done';
              run.state = 'done';
            },
            (err: unknown) => {
              run.finishedAt = now();
              delete run.deviceCode;
              run.error = toMbError(err);
              run.step = 'failed';
              run.state = 'failed';
            },
          );
        return { id: run.id };
      },
    }),
    runRoute(setups, {
      scope: 'admin',
      summary: { en: 'One setup run: its step, the device code to enter, the app, the script, the checks', de: 'Ein Einrichtungslauf: sein Schritt, der einzugebende Gerätecode, die App, das Skript, die Prüfungen' },
      response: setupRunSchema,
      view: setupRunView,
    }),
    configRoute.post('/api/v1/config/apply', {
      summary: {
        en: 'Write a new mailbridge.yaml (validated first; ******** keeps the stored value, a secret typed in clear is sealed) and restart what changed',
        de: 'Eine neue mailbridge.yaml schreiben (vorher geprüft; ******** behält den gespeicherten Wert, ein im Klartext eingegebenes Geheimnis wird versiegelt) und neu starten, was sich geändert hat',
      },
      body: z.object({ text: configFileText }).strict(),
      bodyLimit: CONFIG_BODY_LIMIT,
      status: 200,
      response: z.object({
        applied: z.boolean(),
        restarted: z.array(z.string()).meta({ description: 'What was stopped and started again with the new settings (relay, notify, notify.watch, api.keys, log.level)' }),
        needsRestart: z.array(z.string()).meta({ description: 'Changed sections this gateway cannot restart by itself: systemctl restart mailbridge' }),
      }),
      errors: [422],
      target: () => 'mailbridge.yaml',
      async handler({ body, lang, req }): Promise<ApplyResult> {
        const tools = configToolsOf(ctx, req.url);
        const ops = need(ctx.ops, 'config apply of the gateway', req.url);
        // The editor's masks stand for the file's values; secrets typed in clear are sealed here.
        const resolved = await tools.resolve(body.text, true);
        const first = resolved.unresolved[0];
        if (first) throw new MbError('MB_API_CONFIG_MASK_NEW', { field: first.path });
        if (resolved.typed.length && !resolved.sealed) throw new MbError('MB_API_CONFIG_SECRET_CLEAR', { fields: resolved.typed.join(', '), first: resolved.typed[0] });
        const report = tools.check(resolved.text, lang);
        if (report.errors.length) throw configRefused(report.errors);
        // A clear secret the file already had stays as it was; any other would be written in clear.
        const clear = report.warnings.filter((w) => w.code === 'MB_CONFIG_SECRET_PLAINTEXT' && !resolved.kept.includes(w.path)).map((w) => w.path);
        if (clear.length) throw new MbError('MB_API_CONFIG_SECRET_CLEAR', { fields: clear.join(', '), first: clear[0] });
        return ops.apply(resolved.text, lang);
      },
    }),
  ];
}
