/**
 * Credential expiry in the running gateway: each connection's client secret (its configured
 * clientSecretExpires) and certificate (notAfter) is looked at when the gateway starts and once a
 * day. 30, 14, 7 and 1 days before the date, and once it has passed, the admin is told once per
 * threshold, not every day: a log line (warn, error once expired) and an admin mail
 * (relay.adminMail with the `credentials` event). Between announcements the current state stays
 * visible: /health reports "degraded" with the reason, `mailbridge check` fails the credential
 * check, and /metrics carries mailbridge_credential_expiry_timestamp_seconds.
 *
 * Strategy: the threshold last announced for a connection is kept in the store with the expiry date
 * it was about, so a restart does not repeat it and a new credential (another date) starts afresh.
 * A gateway that was down across several thresholds announces only the nearest one. The texts are
 * the identity's own (MB_CLIENT_SECRET_EXPIRING, MB_CERT_EXPIRING, MB_CLIENT_SECRET_EXPIRED,
 * MB_CERT_EXPIRED), so log, mail, health and check say the same thing.
 *
 * Limits: a secret without clientSecretExpires has no date to watch (`check` names that,
 * MB_CLIENT_SECRET_EXPIRY_UNKNOWN); the clock is injectable, tests move it instead of waiting.
 */
import type { CredentialNotice } from '../identity/index.ts';
import type { MbError, Explanation } from '../errors/index.ts';
import type { Lang } from '../i18n/index.ts';
import type { Logger } from '../log/index.ts';
import type { KeyValue } from '../store/index.ts';

export const EXPIRY_THRESHOLDS_DAYS = [30, 14, 7, 1] as const;
const DAY_MS = 86_400_000;
const KV_NAMESPACE = 'credential-expiry';
const EXPIRY_CODES = new Set(['MB_CLIENT_SECRET_EXPIRING', 'MB_CERT_EXPIRING', 'MB_CLIENT_SECRET_EXPIRED', 'MB_CERT_EXPIRED']);

/** A threshold in days, or `expired`. */
export type ExpiryStage = (typeof EXPIRY_THRESHOLDS_DAYS)[number] | 'expired';

export interface ExpiryAlert {
  connection: string;
  kind: 'secret' | 'certificate';
  /** The expiry date (ISO). */
  expires: string;
  stage: ExpiryStage;
  error: MbError;
}

export interface CredentialMonitorOptions {
  connections: string[];
  /** The identity's notices as of a moment (Identity.credentialNotices). */
  notices: (connection: string, now: number) => Promise<CredentialNotice[]>;
  /** The identity's expiry date of a connection's credential (Identity.credentialExpiry). */
  expiry: (connection: string) => Promise<{ kind: 'secret' | 'certificate'; expires: Date } | undefined>;
  kv: KeyValue;
  log: Logger;
  clock?: () => number;
  /** Told of each new announcement (the gateway queues the admin mail here). */
  announce?: (alert: ExpiryAlert) => Promise<void>;
  /** Also run at each look: removing old credentials whose rotation overlap is over (src/check/rotate.ts). */
  alsoDaily?: () => Promise<unknown>;
}

/** Which threshold a credential with this much time left has reached, if any. */
export function expiryStage(expires: Date, now: number): ExpiryStage | undefined {
  const left = expires.getTime() - now;
  if (left <= 0) return 'expired';
  const days = Math.ceil(left / DAY_MS);
  // The nearest threshold at or above the days left: 29 days left is still the 30-day warning.
  const reached = EXPIRY_THRESHOLDS_DAYS.filter((t) => days <= t);
  return reached.length ? reached[reached.length - 1] : undefined;
}

/** Severity order: later is more urgent. */
function rank(stage: ExpiryStage): number {
  return stage === 'expired' ? EXPIRY_THRESHOLDS_DAYS.length : EXPIRY_THRESHOLDS_DAYS.indexOf(stage);
}

export class CredentialMonitor {
  private readonly o: CredentialMonitorOptions;
  private readonly clock: () => number;
  private current: ExpiryAlert[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ExpiryAlert[]> | undefined;

  constructor(options: CredentialMonitorOptions) {
    this.o = options;
    this.clock = options.clock ?? Date.now;
  }

  /** The credentials at or past a threshold as of the last look (what /health reports). */
  alerts(): ExpiryAlert[] {
    return this.current;
  }

  /** Looks now and then every `everyMs` (default a day); the timer does not keep the process alive. */
  start(everyMs = DAY_MS): Promise<ExpiryAlert[]> {
    this.stop();
    this.timer = setInterval(() => void this.check().catch((err: Error) => this.o.log.error({ err: err.message }, 'credential expiry check failed')), everyMs);
    this.timer.unref();
    return this.check();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look at every connection; announces thresholds not announced before. Runs one at a time. */
  check(): Promise<ExpiryAlert[]> {
    const run = (this.running ?? Promise.resolve([])).then(() => this.look());
    this.running = run.catch(() => []);
    return run;
  }

  private async look(): Promise<ExpiryAlert[]> {
    const now = this.clock();
    const out: ExpiryAlert[] = [];
    for (const connection of this.o.connections) {
      const exp = await this.o.expiry(connection).catch(() => undefined);
      if (!exp) continue;
      const stage = expiryStage(exp.expires, now);
      if (!stage) continue;
      const notice = (await this.o.notices(connection, now)).find((n) => EXPIRY_CODES.has(n.error.code));
      if (!notice) continue;
      const alert: ExpiryAlert = { connection, kind: exp.kind, expires: exp.expires.toISOString(), stage, error: notice.error };
      out.push(alert);
      const stored = await this.o.kv.get(KV_NAMESPACE, connection);
      const last = stored ? (JSON.parse(stored) as { expires: string; stage: ExpiryStage }) : undefined;
      if (last && last.expires === alert.expires && rank(last.stage) >= rank(stage)) continue;
      const ex = alert.error.explain('en');
      const line = { connection, code: ex.code, stage, expires: alert.expires, fix: ex.fix };
      if (stage === 'expired') this.o.log.error(line, `${ex.title}: ${ex.cause}`);
      else this.o.log.warn(line, `${ex.title}: ${ex.cause}`);
      if (this.o.announce) {
        await this.o.announce(alert).catch((err: Error) => this.o.log.error({ connection, err: err.message }, 'credential expiry: the admin mail could not be queued'));
      }
      await this.o.kv.set(KV_NAMESPACE, connection, JSON.stringify({ expires: alert.expires, stage }));
    }
    this.current = out;
    if (this.o.alsoDaily) await this.o.alsoDaily().catch((err: Error) => this.o.log.error({ err: err.message }, 'credential rotate: removing an old credential failed; tried again at the next daily look'));
    return out;
  }
}

/** The admin mail for an alert: subject and body in English and German. */
export function expiryMail(alert: ExpiryAlert, hostname: string): { event: string; subject: string; en: string[]; de: string[] } {
  const text = (lang: Lang) => {
    const x: Explanation = alert.error.explain(lang);
    const label = lang === 'de' ? { cause: 'Ursache', fix: 'Behebung' } : { cause: 'Cause', fix: 'Fix' };
    return [`${x.code}: ${x.title}`, '', `${label.cause}: ${x.cause}`, '', `${label.fix}: ${x.fix}`];
  };
  const when =
    alert.stage === 'expired'
      ? { en: 'has expired', de: 'ist abgelaufen' }
      : { en: `expires in ${alert.stage === 1 ? '1 day' : `${alert.stage} days`}`, de: `läuft in ${alert.stage === 1 ? '1 Tag' : `${alert.stage} Tagen`} ab` };
  return {
    event: 'credentials',
    subject: `mailbridge on ${hostname}: the credential of connection ${alert.connection} ${when.en} / Anmeldeinformation der Verbindung ${alert.connection} ${when.de}`,
    en: text('en'),
    de: text('de'),
  };
}
