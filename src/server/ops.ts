/**
 * The admin API's check runs, setup runs and config apply, bound to this gateway: the same
 * functions `mailbridge check` and `mailbridge setup` run (src/check, src/setup/admin.ts), with
 * their results handed on as they come instead of printed.
 *
 * Check runs read mailbridge.yaml anew, as `mailbridge check` does, so what a setup run just wrote
 * (the client ID, the credential) is what is checked; without a file they check the running
 * configuration. Setup runs and config apply write the file, so they need one; a setup run then
 * hands the connection it set up to the running gateway (its apply: a new identity, and the relay
 * routes and watch groups that use the connection start again with it).
 */
import type { ApplyResult, CheckItem, OpsTools } from '../api/context.ts';
import { configRefused } from '../api/routes/ops.ts';
import { analyzeText, loadConfig, replaceConfigText, secretSlots, storeSettings, type Config } from '../app/config.ts';
import { appOf, type App } from '../app/open.ts';
import type { CheckResult } from '../check/index.ts';
import { isEncrypted, openSecretBox } from '../config/secrets.ts';
import { MbError } from '../errors/index.ts';
import type { Lang } from '../i18n/index.ts';
import type { Logger } from '../log/index.ts';
import { setupWillCreate } from '../setup/relax.ts';

export interface OpsOptions {
  /** The configuration the gateway runs on now. */
  running: () => Config;
  configPath?: string | undefined;
  keyFile: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Restart what changed (the gateway's apply). */
  apply(next: Config): Promise<{ restarted: string[]; needsRestart: string[] }>;
}

const STATUS = { ok: 'ok', failed: 'fail', pending: 'pending', unverified: 'warn' } as const;

/** A result of src/check as the API shows it: "contoso: FullAccess info@contoso.com". */
export function checkItem(r: CheckResult, checkName: (check: string, lang: Lang) => string): CheckItem {
  const title = (lang: Lang) => `${r.connection}: ${checkName(r.check, lang)} ${r.label?.[lang] ?? r.subject}`;
  return { id: `${r.connection}/${r.check}/${r.subject}`, title: { en: title('en'), de: title('de') }, status: STATUS[r.status], ...(r.error ? { error: r.error } : {}) };
}

export function opsTools(o: OpsOptions): OpsTools {
  const needFile = (path: string): string => {
    if (o.configPath === undefined) throw new MbError('MB_API_NOT_CONFIGURED', { section: 'mailbridge.yaml', path });
    return o.configPath;
  };
  /** The configuration as the file has it now (setup may just have written it), else the running one. */
  const current = async (): Promise<App> => {
    if (o.configPath === undefined) return appOf({ config: o.running(), keyFile: o.keyFile }, { env: o.env, log: o.log });
    // A connection setup has yet to create loads as well: check names what it lacks.
    return appOf(await loadConfig(o.configPath, o.env, { relax: setupWillCreate }), { env: o.env, log: o.log });
  };

  const check: OpsTools['check'] = async (connection, onResult) => {
    const app = await current();
    try {
      const { config } = app;
      const box = await app.secretBox();
      // The probes (IMAP, SMTP, EWS, Graph) load with the first check run, not with every gateway.
      const { checkName, runChecks } = await import('../check/index.ts');
      await runChecks({
        config,
        identity: await app.identity(),
        ...(connection !== undefined ? { target: connection } : {}),
        env: o.env,
        log: o.log,
        reveal: (stored) => box.reveal(stored),
        onResult: (r) => onResult(checkItem(r, checkName)),
      });
    } finally {
      await app.close();
    }
  };

  return {
    check,

    async setup({ connection, credential, lang }, progress) {
      const configPath = needFile('/api/v1/setup/runs');
      const { config, keyFile } = await loadConfig(configPath, o.env, { relax: setupWillCreate });
      const conn = config.connections[connection];
      if (!conn) throw new MbError('MB_IDENTITY_UNKNOWN_CONNECTION', { connection, known: Object.keys(config.connections).join(', ') || '—' });
      const secretBox = await openSecretBox({ keyFile, env: o.env });
      const { setupWithAdmin, signInAdmin } = await import('../setup/admin.ts');
      progress.step('signin');
      const session = await signInAdmin({ config, conn, secretBox, env: o.env, log: o.log, onCode: (info) => progress.deviceCode(info) });
      let result;
      try {
        progress.step('creating');
        result = await setupWithAdmin({
          config,
          configPath,
          connection,
          mode: 'apply',
          session,
          env: o.env,
          secretBox,
          lang,
          ...(credential ? { credential } : {}),
          // As the CLI: a new secret is sealed into mailbridge.yaml here and never leaves this process.
          storeSettings: async (entries) => {
            await storeSettings(configPath, entries, o.env);
            const id = entries.find((e) => e.path.at(-1) === 'clientId');
            if (id) progress.app(id.value);
          },
        });
      } finally {
        await session.identity.close();
      }
      progress.app(result.app.appId);
      // The gateway takes the app's client ID and credential at once, as config apply would.
      const written = (await loadConfig(configPath, o.env, { relax: setupWillCreate })).config.connections[connection];
      const now = o.running();
      if (written) await o.apply({ ...now, connections: { ...now.connections, [connection]: written } });
      progress.step('script');
      if (result.script !== undefined) progress.script(result.script);
      progress.step('checking');
      // What setup could not do itself (an app with other certificates) heads the checks.
      result.missing.forEach((m, i) => progress.check({ id: `${connection}/setup/${i}`, title: m, status: 'fail' }));
      await check(connection, (item) => progress.check(item));
    },

    async apply(text, lang): Promise<ApplyResult> {
      const configPath = needFile('/api/v1/config/apply');
      // With the environment's overrides, as the next start would load it.
      const report = analyzeText(text, configPath, o.env, { lang });
      if (report.errors.length || !report.config) throw configRefused(report.errors);
      const box = await openSecretBox({ keyFile: report.keyFile, env: o.env });
      for (const slot of secretSlots(report.raw)) {
        if (!isEncrypted(slot.value)) continue;
        try {
          box.reveal(slot.value, slot.path);
        } catch {
          throw new MbError('MB_API_CONFIG_SECRET_UNREADABLE', { field: slot.path, keySource: box.keySource === 'env' ? 'MAILBRIDGE_KEY' : box.keyFile });
        }
      }
      await replaceConfigText(configPath, text);
      const done = await o.apply(report.config);
      return { applied: true, ...done };
    },
  };
}
