/**
 * Graph subscriptions for one folder (facts §4.1, §4.4): create, renew (PATCH), reauthorize,
 * delete, and the record kept in kv (id, expiry, notificationUrl and the clientState sealed with the
 * SecretBox; where in kv is the owner's: the watcher and the connector keep theirs apart). Failures
 * become MbErrors with the fix an admin needs: 403 → the Mail.Read permission and admin consent;
 * Graph's "Subscription validation request failed" → reachability of the public URL; the
 * 1,000-subscriptions-per-mailbox limit; anything else with Graph's status, code and message. Each
 * owner names its own codes (SubscriptionCodes), because what follows from a failure differs: a
 * watcher's events come late, a connector falls back to its poll interval. The caller decides when
 * to retry.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MbError, type MbCode } from '../../errors/index.ts';
import type { KeyValue } from '../../store/index.ts';
import { graphError, GraphUnreachable, type GraphClient, type GraphReply } from '../graph.ts';

/**
 * The codes an owner reports subscription trouble with. Each entry takes the parameters named
 * here (plus the owner's own `params`, e.g. the connector's name):
 * forbidden {status, code, mailbox, operation, detail, seconds}; validation {mailbox, folder,
 * detail, notificationUrl, seconds}; limit {mailbox, detail, seconds}; failed {status, code,
 * operation, mailbox, folder, detail, seconds}; clientState {subscriptionId, mailbox}; removed and
 * missed {mailbox, folder, subscriptionId}.
 */
export interface SubscriptionCodes {
  forbidden: MbCode;
  validation: MbCode;
  limit: MbCode;
  failed: MbCode;
  clientState: MbCode;
  removed: MbCode;
  missed: MbCode;
}

/** Where an owner keeps its subscription records: a kv namespace and a key prefix (mailbox and folder follow). */
export interface RecordPlace {
  kv: KeyValue;
  namespace: string;
  prefix: string;
}

export interface SubscriptionRecord {
  id: string;
  /** Expiry (ms since the epoch) as Graph confirmed it. */
  expires: number;
  /** The clientState, sealed. */
  clientState: string;
  notificationUrl: string;
  /** encryptionCertificateId of a rich subscription. */
  certId?: string;
}

/** Properties rich notifications carry (Outlook requires $select in the resource, facts §4.5). */
export const RICH_SELECT = 'subject,from,receivedDateTime,isRead';

export interface CreateParams {
  mailbox: string;
  folder: string;
  notificationUrl: string;
  lifecycleNotificationUrl?: string;
  changeTypes: readonly string[];
  expirationMinutes: number;
  now: number;
  /** Rich notifications: the listener's certificate (base64 DER) and its id. */
  rich?: { certificate: string; id: string };
}

export interface Created {
  id: string;
  expires: number;
  clientState: string;
}

/** The kv key of a folder's record: `<prefix><mailbox>\t<folder>` (the watcher's prefix is `s\t`). */
export function subscriptionKey(mailbox: string, folder: string, prefix = 's\t'): string {
  return `${prefix}${mailbox}\t${folder}`;
}

/** What is kept in memory instead of the clientState itself. */
export function clientStateDigest(clientState: string): Buffer {
  return createHash('sha256').update(clientState, 'utf8').digest();
}

export function clientStateMatches(given: unknown, digest: Buffer | undefined): boolean {
  if (typeof given !== 'string' || !digest) return false;
  return timingSafeEqual(clientStateDigest(given), digest);
}

/** `users/{mailbox}/mailFolders('{folder}')/messages` (facts §4.1 lists this form). */
export function resourcePath(mailbox: string, folder: string): string {
  const f = folder.toUpperCase() === 'INBOX' ? 'inbox' : folder;
  return `users/${mailbox}/mailFolders('${f.replace(/'/g, "''")}')/messages`;
}

function isoIn(now: number, minutes: number): string {
  return new Date(now + minutes * 60_000).toISOString();
}

/** The MbError for a failed create/renew/reauthorize. */
export function subscribeFailed(
  operation: string,
  p: { mailbox: string; folder: string; notificationUrl: string },
  reply: GraphReply | GraphUnreachable,
  seconds: number,
  codes: SubscriptionCodes,
  params: Record<string, string> = {},
): MbError {
  if (reply instanceof GraphUnreachable) {
    return new MbError(codes.failed, { ...params, status: 0, code: 'unreachable', operation, mailbox: p.mailbox, folder: p.folder, detail: reply.message, seconds });
  }
  const e = graphError(reply);
  const details: Record<string, string> = reply.requestId ? { 'request-id': reply.requestId } : {};
  const text = `${e.code} ${e.message}`;
  if (reply.status === 400 && /validation request failed|notification endpoint|notificationUrl/i.test(text)) {
    return new MbError(codes.validation, { ...params, mailbox: p.mailbox, folder: p.folder, detail: e.message, notificationUrl: p.notificationUrl, seconds }, { details });
  }
  // Exact text of the per-mailbox limit is not in the facts; these words are what it is known to say.
  if ((reply.status === 403 || reply.status === 400 || reply.status === 429) && /1,?000|maximum number|limit (has been )?reached|too many subscriptions|quota/i.test(text)) {
    return new MbError(codes.limit, { ...params, mailbox: p.mailbox, detail: e.message, seconds }, { details });
  }
  if (reply.status === 401 || reply.status === 403) {
    return new MbError(codes.forbidden, { ...params, status: reply.status, code: e.code, mailbox: p.mailbox, operation, detail: e.message, seconds }, { details });
  }
  return new MbError(codes.failed, { ...params, status: reply.status, code: e.code, operation, mailbox: p.mailbox, folder: p.folder, detail: e.message, seconds }, { details });
}

async function call(client: GraphClient, mailbox: string, method: string, url: string, body?: unknown): Promise<GraphReply | GraphUnreachable> {
  try {
    return await client.call(mailbox, method, url, body === undefined ? {} : { json: body });
  } catch (err) {
    if (err instanceof GraphUnreachable) return err;
    throw err;
  }
}

function expiryOf(reply: GraphReply, fallback: number): number {
  const t = typeof reply.json?.expirationDateTime === 'string' ? Date.parse(reply.json.expirationDateTime) : NaN;
  return Number.isNaN(t) ? fallback : t;
}

/** POST /subscriptions; a failure is returned as the reply, for `subscribeFailed`. */
export async function createSubscription(client: GraphClient, p: CreateParams): Promise<Created | GraphReply | GraphUnreachable> {
  // 32 random bytes: 43 characters, within Graph's 128.
  const clientState = randomBytes(32).toString('base64url');
  const body: Record<string, unknown> = {
    changeType: p.changeTypes.join(','),
    notificationUrl: p.notificationUrl,
    resource: p.rich ? `${resourcePath(p.mailbox, p.folder)}?$select=${RICH_SELECT}` : resourcePath(p.mailbox, p.folder),
    expirationDateTime: isoIn(p.now, p.expirationMinutes),
    clientState,
    latestSupportedTlsVersion: 'v1_2',
  };
  if (p.lifecycleNotificationUrl) body.lifecycleNotificationUrl = p.lifecycleNotificationUrl;
  if (p.rich) {
    body.includeResourceData = true;
    body.encryptionCertificate = p.rich.certificate;
    body.encryptionCertificateId = p.rich.id;
  }
  const reply = await call(client, p.mailbox, 'POST', `${client.base}/subscriptions`, body);
  if (reply instanceof GraphUnreachable || reply.status !== 201) return reply;
  const id = reply.json?.id;
  if (typeof id !== 'string' || !id) return { ...reply, status: 502, text: 'Graph answered 201 without a subscription id' };
  return { id, clientState, expires: expiryOf(reply, p.now + p.expirationMinutes * 60_000) };
}

export type RenewOutcome = { kind: 'ok'; expires: number } | { kind: 'gone' } | { kind: 'failed'; reply: GraphReply | GraphUnreachable };

/** PATCH /subscriptions/{id} with a new expiry; 404 means Graph no longer has it. */
export async function renewSubscription(client: GraphClient, mailbox: string, id: string, now: number, minutes: number): Promise<RenewOutcome> {
  const reply = await call(client, mailbox, 'PATCH', `${client.base}/subscriptions/${encodeURIComponent(id)}`, { expirationDateTime: isoIn(now, minutes) });
  if (reply instanceof GraphUnreachable) return { kind: 'failed', reply };
  if (reply.status === 200) return { kind: 'ok', expires: expiryOf(reply, now + minutes * 60_000) };
  if (reply.status === 404) return { kind: 'gone' };
  return { kind: 'failed', reply };
}

/** POST /subscriptions/{id}/reauthorize (answer to reauthorizationRequired). */
export async function reauthorizeSubscription(client: GraphClient, mailbox: string, id: string): Promise<'ok' | 'gone' | 'failed'> {
  const reply = await call(client, mailbox, 'POST', `${client.base}/subscriptions/${encodeURIComponent(id)}/reauthorize`);
  if (reply instanceof GraphUnreachable) return 'failed';
  if (reply.status >= 200 && reply.status < 300) return 'ok';
  return reply.status === 404 ? 'gone' : 'failed';
}

/** DELETE /subscriptions/{id}, best effort (a subscription left behind expires by itself). */
export async function deleteSubscription(client: GraphClient, mailbox: string, id: string): Promise<boolean> {
  const reply = await call(client, mailbox, 'DELETE', `${client.base}/subscriptions/${encodeURIComponent(id)}`);
  return !(reply instanceof GraphUnreachable) && (reply.status === 204 || reply.status === 404);
}

export async function loadRecord(place: RecordPlace, mailbox: string, folder: string): Promise<SubscriptionRecord | undefined> {
  const raw = await place.kv.get(place.namespace, subscriptionKey(mailbox, folder, place.prefix));
  if (!raw) return undefined;
  try {
    const r = JSON.parse(raw) as Partial<SubscriptionRecord>;
    if (typeof r.id !== 'string' || typeof r.expires !== 'number' || typeof r.clientState !== 'string' || typeof r.notificationUrl !== 'string') return undefined;
    return { id: r.id, expires: r.expires, clientState: r.clientState, notificationUrl: r.notificationUrl, ...(typeof r.certId === 'string' ? { certId: r.certId } : {}) };
  } catch {
    return undefined;
  }
}

export async function saveRecord(place: RecordPlace, mailbox: string, folder: string, record: SubscriptionRecord): Promise<void> {
  await place.kv.set(place.namespace, subscriptionKey(mailbox, folder, place.prefix), JSON.stringify(record));
}

export async function dropRecord(place: RecordPlace, mailbox: string, folder: string): Promise<void> {
  await place.kv.delete(place.namespace, subscriptionKey(mailbox, folder, place.prefix));
}
