/**
 * `mailbridge credential rotate <connection>`: a new credential for the connection's app through
 * Microsoft Graph, taken into use only once a token works with it, the old one removed after an
 * overlap.
 *
 * Strategy (facts §6):
 *  - Certificate: a new RSA key and self-signed certificate are made here (the key never leaves
 *    the machine; only the public certificate goes to Entra ID) and added with
 *    `POST /applications/{id}/addKey`, whose proof of possession is a JWT signed by the current
 *    certificate (aud 00000002-0000-0000-c000-000000000000, iss = the application's object id,
 *    at most 10 minutes). addKey needs a valid current certificate; an app without one cannot
 *    rotate this way (PATCH keyCredentials replaces all of them, which is setup's business).
 *  - Secret: `POST /applications/{id}/addPassword`; the value is returned this once, registered
 *    with the scrubber at once and stored sealed.
 *  - Then a token is requested with the new credential (a few tries: Entra can need a moment
 *    before a new key signs in); only when one is issued does mailbridge.yaml switch to it. The
 *    old credential is removed at once with `--overlap-hours 0`, else recorded in the store and
 *    removed when the overlap is over, by the gateway's daily credential look or the next rotate.
 *    The overlap covers what still runs with the old one: a running gateway reads the new one at
 *    its next restart, and other nodes too.
 *
 * Graph calls go with the connection's own app-only token; the app needs
 * Application.ReadWrite.OwnedBy and to own its registration (or Application.ReadWrite.All).
 * Limits: the old secret is recognised by its hint (first three characters) and expiry date, as
 * Graph shows no more of it; when that is ambiguous it is left in place and the result says so.
 */
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { importPKCS8, SignJWT } from 'jose';
import type { Config } from '../app/schema.ts';
import type { ConnectionConfig } from '../identity/config.ts';
import type { SecretBox } from '../config/secret-box.ts';
import { storeSettings } from '../app/config.ts';
import { MbError, toMbError } from '../errors/index.ts';
import { cloudFor, createIdentity } from '../identity/index.ts';
import { loadCertificate, revealSecret } from '../identity/credentials.ts';
import { registerSecret } from '../log/redact.ts';
import { silentLogger, type Logger } from '../log/index.ts';
import { GraphClient, graphError, type GraphReply } from '../m365/graph.ts';
import type { ProxySettings } from '../net/proxy.ts';
import type { KeyValue } from '../store/index.ts';
import { selfSignedCertificate } from '../util/certificates.ts';
import { sleep } from '../util/limits.ts';
import { graphUrlFor } from './index.ts';
import { findApplication } from '../setup/directory.ts';
import { readRetire, RETIRE_NAMESPACE, type RetireEntry } from './retire.ts';

const PROOF_AUDIENCE = '00000002-0000-0000-c000-000000000000';
const HOUR_MS = 3_600_000;

export interface RotateOptions {
  configPath: string;
  config: Config;
  connection: string;
  box: SecretBox;
  kv: KeyValue;
  /** Read the connection's caFile (PEM). */
  ca?: string;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  clock?: () => number;
  /** How long the old credential stays (0: removed at once). */
  overlapMs: number;
  /** Lifetime of the new credential (secrets at most 24 months, Entra's limit). */
  validDays: number;
  /** Told of every token request (tests count failures). */
  onTokenRequest?: (connection: string, result: { ok: boolean }) => void;
  /** Tries and wait between them while Entra takes the new credential in. */
  verifyTries?: number;
  verifyWaitMs?: number;
}

export interface RotateResult {
  connection: string;
  kind: 'certificate' | 'secret';
  /** keyId of the new credential in Entra ID. */
  keyId: string;
  expires: string;
  /** The new certificate file (certificate rotation). */
  file?: string;
  /** Token requests it took before the new credential worked. */
  attempts: number;
  old: { keyId: string; removed: boolean; removeAfter?: string } | { keyId: undefined; reason: string };
}

function proxyOf(config: Config, conn: ConnectionConfig, env: NodeJS.ProcessEnv | undefined): ProxySettings {
  return { proxy: conn.proxy ?? config.server.proxy, source: conn.proxy ? 'connection' : 'server', env: env ?? process.env };
}

/** An identity that knows only this connection: as configured, or with the new credential being tried. */
function identityFor(o: Pick<RotateOptions, 'config' | 'connection' | 'box' | 'kv' | 'env' | 'log' | 'onTokenRequest'>, conn: ConnectionConfig) {
  return createIdentity({
    config: { connections: { [o.connection]: conn }, server: o.config.server },
    kv: o.kv,
    secretBox: o.box,
    log: o.log ?? silentLogger,
    env: o.env ?? process.env,
    onTokenRequest: (c, r) => o.onTokenRequest?.(c, { ok: r.ok }),
  });
}

/** The connection's app-only token provider and a Graph client for its app registration. */
function graphFor(o: Pick<RotateOptions, 'config' | 'connection' | 'box' | 'kv' | 'ca' | 'env' | 'log' | 'onTokenRequest'>) {
  const conn = o.config.connections[o.connection] as ConnectionConfig;
  const identity = identityFor(o, conn);
  const client = new GraphClient({
    baseUrl: graphUrlFor(o.config, o.connection),
    graphHost: cloudFor(conn.cloud).graphHost,
    tokens: async () => (await identity.getToken(o.connection, 'graph')).accessToken,
    proxy: proxyOf(o.config, conn, o.env),
    ca: o.ca,
    throttleRetries: 2,
  });
  return {
    client,
    async close() {
      await client.close();
      await identity.close();
    },
  };
}

function failed(connection: string, step: string, reply: GraphReply): MbError {
  const e = graphError(reply);
  return new MbError('MB_ROTATE_GRAPH_FAILED', { connection, step, status: reply.status, code: e.code || '-', detail: e.message });
}

/**
 * A proof of possession for addKey/removeKey, signed by a certificate the app has. Its times are
 * the real clock's (Graph checks them against its own), whatever clock schedules the removal.
 */
async function proof(appObjectId: string, keyPem: string, certPem: string): Promise<string> {
  const der = new X509Certificate(certPem).raw;
  const x5t = createHash('sha1').update(der).digest('base64url');
  const nbf = Math.floor(Date.now() / 1000);
  return new SignJWT({ aud: PROOF_AUDIENCE, iss: appObjectId, nbf, exp: nbf + 600, jti: randomUUID() })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', x5t })
    .sign(await importPKCS8(keyPem, 'RS256'));
}

export async function rotateCredential(o: RotateOptions): Promise<RotateResult> {
  const conn = o.config.connections[o.connection];
  if (!conn) throw new MbError('MB_IDENTITY_UNKNOWN_CONNECTION', { connection: o.connection, known: Object.keys(o.config.connections).join(', ') || '-' });
  if (!conn.certificate && !conn.clientSecret) throw new MbError('MB_ROTATE_NOT_POSSIBLE', { connection: o.connection, flow: conn.flow });
  const now = (o.clock ?? Date.now)();
  const log = o.log ?? silentLogger;
  await retireDue({ ...o, only: o.connection, readCa: async () => o.ca });
  const g = graphFor(o);
  try {
    const found = await findApplication(async (path) => {
      const reply = await g.client.call('directory', 'GET', path);
      if (reply.status !== 200) throw failed(o.connection, 'GET application', reply);
      return reply.json ?? {};
    }, conn.clientId);
    if (!found) throw new MbError('MB_ROTATE_GRAPH_FAILED', { connection: o.connection, step: 'GET application', status: 404, code: 'Request_ResourceNotFound', detail: `no app registration with appId ${conn.clientId}` });
    const app = { ...found, keyCredentials: found.keyCredentials ?? [], passwordCredentials: found.passwordCredentials ?? [] };
    const stamp = new Date(now).toISOString().replace(/[-:]/g, '').slice(0, 13);
    const expires = new Date(now + o.validDays * 86_400_000);

    if (conn.certificate) {
      const password = conn.certificate.password !== undefined ? revealSecret(o.box, conn.certificate.password, o.connection, `connections.${o.connection}.certificate.password`) : undefined;
      const current = await loadCertificate(o.connection, conn.certificate, password);
      const made = selfSignedCertificate({ commonName: `mailbridge ${o.connection}`, notBefore: new Date(now - 5 * 60_000), notAfter: expires, use: 'signing' });
      registerSecret(made.keyPem);
      const base = basename(conn.certificate.path, extname(conn.certificate.path));
      const file = join(dirname(conn.certificate.path), `${base.replace(/-\d{8}T\d{4}$/, '')}-${stamp}.pem`);
      await writeFile(file, `${made.certPem}${made.keyPem}`, { mode: 0o600, flag: 'wx' });
      const der = new X509Certificate(made.certPem).raw.toString('base64');
      const added = await g.client.call('directory', 'POST', `/applications/${app.id}/addKey`, {
        json: {
          keyCredential: { type: 'AsymmetricX509Cert', usage: 'Verify', key: der, displayName: `mailbridge ${stamp}` },
          passwordCredential: null,
          proof: await proof(app.id, current.privateKeyPem, current.certPem),
        },
      });
      if (added.status !== 200) throw failed(o.connection, 'addKey', added);
      const keyId = String(added.json?.keyId ?? '');
      const newConn: ConnectionConfig = { ...conn, certificate: { path: file, algorithm: conn.certificate.algorithm } };
      const attempts = await verify(o, newConn);
      // Path and key path together, in one replace of the file: never one without the other.
      await storeSettings(
        o.configPath,
        [
          { path: ['connections', o.connection, 'certificate', 'path'], value: file },
          ...(conn.certificate.privateKeyPath !== undefined ? [{ path: ['connections', o.connection, 'certificate', 'privateKeyPath'], value: file }] : []),
        ],
        o.env ?? process.env,
      );
      log.info({ connection: o.connection, keyId, file }, 'credential rotate: new certificate in use');
      const oldKey = app.keyCredentials.find((k) => (k.customKeyIdentifier ?? '').toLowerCase() === current.thumbprintSha1.toLowerCase() || sha1Base64(current.thumbprintSha1) === k.customKeyIdentifier);
      const old = oldKey
        ? await retireOrSchedule(o, g.client, { kind: 'certificate', keyId: oldKey.keyId, appObjectId: app.id, after: now + o.overlapMs }, { keyPem: made.keyPem, certPem: made.certPem })
        : { keyId: undefined, reason: 'not found among the keyCredentials' };
      return { connection: o.connection, kind: 'certificate', keyId, expires: expires.toISOString(), file, attempts, old };
    }

    const currentSecret = revealSecret(o.box, conn.clientSecret as string, o.connection, `connections.${o.connection}.clientSecret`);
    const added = await g.client.call('directory', 'POST', `/applications/${app.id}/addPassword`, {
      json: { passwordCredential: { displayName: `mailbridge ${stamp}`, endDateTime: expires.toISOString() } },
    });
    if (added.status !== 200) throw failed(o.connection, 'addPassword', added);
    const secretText = String(added.json?.secretText ?? '');
    registerSecret(secretText);
    const keyId = String(added.json?.keyId ?? '');
    const endDate = String(added.json?.endDateTime ?? expires.toISOString()).slice(0, 10);
    const attempts = await verify(o, { ...conn, clientSecret: secretText, clientSecretExpires: endDate });
    // The secret (sealed) and its date together, in one replace of the file.
    await storeSettings(
      o.configPath,
      [
        { path: ['connections', o.connection, 'clientSecret'], value: secretText, secret: true },
        { path: ['connections', o.connection, 'clientSecretExpires'], value: endDate },
      ],
      o.env ?? process.env,
    );
    log.info({ connection: o.connection, keyId }, 'credential rotate: new client secret in use');
    const candidates = app.passwordCredentials.filter(
      (p) => p.keyId !== keyId && p.hint === currentSecret.slice(0, 3) && (!conn.clientSecretExpires || (p.endDateTime ?? '').slice(0, 10) === conn.clientSecretExpires),
    );
    const old =
      candidates.length === 1
        ? await retireOrSchedule(o, g.client, { kind: 'secret', keyId: candidates[0]!.keyId, appObjectId: app.id, after: now + o.overlapMs })
        : { keyId: undefined, reason: candidates.length === 0 ? 'no secret with its hint and expiry date' : 'more than one secret with its hint and expiry date' };
    return { connection: o.connection, kind: 'secret', keyId, expires: `${endDate}T23:59:59.999Z`, attempts, old };
  } finally {
    await g.close();
  }
}

/** A token with the new credential, tried a few times (Entra may need a moment); the number of tries. */
async function verify(o: RotateOptions, conn: ConnectionConfig): Promise<number> {
  const identity = identityFor(o, conn);
  const tries = o.verifyTries ?? 6;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await identity.getToken(o.connection, 'exchange', { forceRefresh: true });
        return attempt;
      } catch (err) {
        if (attempt >= tries) throw new MbError('MB_ROTATE_NEW_CREDENTIAL_REFUSED', { connection: o.connection, tries, detail: toMbError(err).code }, { cause: err });
        await sleep((o.verifyWaitMs ?? 5000) * attempt);
      }
    }
  } finally {
    await identity.close();
  }
}

async function retireOrSchedule(
  o: RotateOptions,
  client: GraphClient,
  entry: RetireEntry,
  signer?: { keyPem: string; certPem: string },
): Promise<{ keyId: string; removed: boolean; removeAfter?: string }> {
  if (o.overlapMs <= 0) {
    await remove(o.connection, client, entry, signer);
    return { keyId: entry.keyId, removed: true };
  }
  const list = await readRetire(o.kv, o.connection);
  list.push(entry);
  await o.kv.set(RETIRE_NAMESPACE, o.connection, JSON.stringify(list));
  return { keyId: entry.keyId, removed: false, removeAfter: new Date(entry.after).toISOString() };
}

async function remove(connection: string, client: GraphClient, entry: RetireEntry, signer: { keyPem: string; certPem: string } | undefined): Promise<void> {
  const reply =
    entry.kind === 'secret'
      ? await client.call('directory', 'POST', `/applications/${entry.appObjectId}/removePassword`, { json: { keyId: entry.keyId } })
      : await client.call('directory', 'POST', `/applications/${entry.appObjectId}/removeKey`, {
          json: { keyId: entry.keyId, proof: await proof(entry.appObjectId, signer!.keyPem, signer!.certPem) },
        });
  // Already gone (removed in the portal) is what was wanted.
  if (reply.status !== 204 && reply.status !== 200 && reply.status !== 404) throw failed(connection, entry.kind === 'secret' ? 'removePassword' : 'removeKey', reply);
}

/**
 * Removes old credentials whose overlap is over (all connections, or `only`); the gateway calls
 * it daily, rotate before it adds a new one. A certificate's removal is signed with the
 * connection's current certificate.
 */
export async function retireDue(
  o: Pick<RotateOptions, 'config' | 'box' | 'kv' | 'env' | 'log' | 'clock' | 'onTokenRequest'> & { only?: string; readCa?: (connection: string) => Promise<string | undefined> },
): Promise<string[]> {
  const now = (o.clock ?? Date.now)();
  const removed: string[] = [];
  for (const { key: connection } of await o.kv.list(RETIRE_NAMESPACE)) {
    if (o.only !== undefined && connection !== o.only) continue;
    const conn = o.config.connections[connection];
    const entries = await readRetire(o.kv, connection);
    const due = entries.filter((e) => e.after <= now);
    if (!conn || due.length === 0) continue;
    const ca = await o.readCa?.(connection);
    const g = graphFor({ ...o, connection, ...(ca ? { ca } : {}) });
    try {
      let signer: { keyPem: string; certPem: string } | undefined;
      if (conn.certificate && due.some((e) => e.kind === 'certificate')) {
        const password = conn.certificate.password !== undefined ? revealSecret(o.box, conn.certificate.password, connection, `connections.${connection}.certificate.password`) : undefined;
        const current = await loadCertificate(connection, conn.certificate, password);
        signer = { keyPem: current.privateKeyPem, certPem: current.certPem };
      }
      for (const e of due) {
        await remove(connection, g.client, e, signer);
        removed.push(`${connection}:${e.keyId}`);
        (o.log ?? silentLogger).info({ connection, keyId: e.keyId, kind: e.kind }, 'credential rotate: old credential removed after the overlap');
      }
      const left = entries.filter((e) => e.after > now);
      if (left.length) await o.kv.set(RETIRE_NAMESPACE, connection, JSON.stringify(left));
      else await o.kv.delete(RETIRE_NAMESPACE, connection);
    } finally {
      await g.close();
    }
  }
  return removed;
}

function sha1Base64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

export const ROTATE_DEFAULT_OVERLAP_MS = 24 * HOUR_MS;
