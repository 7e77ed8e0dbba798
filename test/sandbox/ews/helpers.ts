/**
 * The rig the sandbox EWS tests share: a sandbox CA, a directory (tenant Contoso with an app holding
 * full_access_as_app and one without, users with passwords for Basic auth, mailboxes), a mail feed
 * (the synthetic mailboxes by default: in memory, changes reported at once; or the real Dovecot
 * feed), the EWS sandbox on a ManualScheduler, an HTTPS client trusting the CA, JWTs signed by a key
 * whose public JWK is the sandbox's JWKS, and a reader that splits a GetStreamingEvents response
 * into its envelopes as they arrive.
 */
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JSONWebKeySet } from 'jose';
import { Agent, request } from 'undici';
import { createSandboxCa, type SandboxCa } from '../../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../../src/sandbox/directory.ts';
import { ManualScheduler, startEwsSandbox, type EwsSandboxOptions, type FolderLister, type SandboxEws } from '../../../src/sandbox/ews/index.ts';
import { SyntheticMailboxes } from '../../../src/sandbox/feed/synthetic.ts';
import type { MailFeed } from '../../../src/sandbox/mailfeed.ts';
import { child, kids, NS, parseXml, type XNode } from '../../../src/sandbox/ews/xml.ts';

export { NS, child, kids, parseXml };
export type { XNode };

export const TENANT = '1c000000-0000-4000-8000-0000000000e1';
export const OTHER_TENANT = '1c000000-0000-4000-8000-0000000000e2';
export const APP = { appId: 'a0000000-0000-4000-8000-0000000000e1', sp: 'a2000000-0000-4000-8000-0000000000e1' };
export const NOROLE = { appId: 'a0000000-0000-4000-8000-0000000000e2', sp: 'a2000000-0000-4000-8000-0000000000e2' };
/** Mailboxes in the directory that the synthetic feed also holds (so events flow without Dovecot). */
export const U1 = 'user00001@synthetic.test';
export const U2 = 'user00002@synthetic.test';
export const U3 = 'user00003@synthetic.test';
/** A directory mailbox the synthetic feed does not hold. */
export const ALICE = 'alice@contoso.test';
export const SVC = 'svc-ews@contoso.test';

export function ewsDirectory(extraMailboxes: string[] = []): SandboxDirectory {
  return new SandboxDirectory({
    tenants: [
      {
        id: TENANT,
        name: 'Contoso',
        domains: ['contoso.test', 'synthetic.test'],
        apps: [
          { appId: APP.appId, objectId: 'a1000000-0000-4000-8000-0000000000e1', servicePrincipalId: APP.sp, appRoles: { exchange: ['full_access_as_app'], graph: [] } },
          { appId: NOROLE.appId, objectId: 'a1000000-0000-4000-8000-0000000000e2', servicePrincipalId: NOROLE.sp, appRoles: { exchange: ['IMAP.AccessAsApp'], graph: [] } },
        ],
        users: [
          { objectId: 'b0000000-0000-4000-8000-0000000000e1', upn: ALICE, displayName: 'Alice Able', password: 'alice-pw' },
          { objectId: 'b0000000-0000-4000-8000-0000000000e2', upn: SVC, displayName: 'EWS service', password: 'svc-pw' },
          { objectId: 'b0000000-0000-4000-8000-0000000000e3', upn: U3, displayName: 'User Three', password: 'u3-pw' },
        ],
        exchange: {
          mailboxes: [
            { address: ALICE, displayName: 'Alice Able' },
            { address: U1, displayName: 'User One' },
            { address: U2, displayName: 'User Two', fullAccess: [SVC] },
            { address: U3, displayName: 'User Three' },
            ...extraMailboxes.map((address) => ({ address })),
          ],
        },
      },
      { id: OTHER_TENANT, name: 'Fabrikam', domains: ['fabrikam.test'], exchange: { mailboxes: [{ address: 'frank@fabrikam.test' }] } },
    ],
  });
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  xml(): XNode;
}

export interface StreamReader {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The next envelope (parsed); rejects when the stream ends first. */
  next(): Promise<XNode>;
  /** Resolves when the response ends (or the connection breaks): true if it ended cleanly. */
  ended: Promise<boolean>;
  /** Envelopes received so far (raw). */
  raw: string[];
  close(): void;
}

export interface Rig {
  ca: SandboxCa;
  agent: Agent;
  ews: SandboxEws;
  sched: ManualScheduler;
  synthetic: SyntheticMailboxes;
  directory: SandboxDirectory;
  jwks: JSONWebKeySet;
  appToken(claims?: Record<string, unknown>, app?: { appId: string; sp: string }): Promise<string>;
  userToken(upn: string, scp?: string): Promise<string>;
  /** POST a SOAP body (the inner operation XML) with optional SOAP header XML. */
  soap(body: string, o?: { token?: string; auth?: string; header?: string; impersonate?: string; headers?: Record<string, string> }): Promise<Response>;
  /** POST raw text to a path. */
  post(path: string, text: string, headers?: Record<string, string>): Promise<Response>;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  /** Opens GetStreamingEvents and returns a reader of its envelopes. */
  stream(ids: string[], o?: { timeout?: number; impersonate?: string; headers?: Record<string, string> }): Promise<StreamReader>;
  close(): Promise<void>;
}

export const M = `xmlns:m="${NS.m}" xmlns:t="${NS.t}"`;

export function envelope(body: string, header = ''): string {
  return `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="${NS.soap}" xmlns:m="${NS.m}" xmlns:t="${NS.t}"><soap:Header><t:RequestServerVersion Version="Exchange2013"/>${header}</soap:Header><soap:Body>${body}</soap:Body></soap:Envelope>`;
}

export function impersonation(address: string): string {
  return `<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>${address}</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>`;
}

export function streamingSubscribe(o: { folders?: string[]; all?: boolean; events?: string[]; mailbox?: string } = {}): string {
  const events = (o.events ?? ['NewMailEvent', 'CreatedEvent', 'DeletedEvent', 'ModifiedEvent', 'MovedEvent']).map((e) => `<t:EventType>${e}</t:EventType>`).join('');
  const mbx = o.mailbox ? `<t:Mailbox><t:EmailAddress>${o.mailbox}</t:EmailAddress></t:Mailbox>` : '';
  const folders = o.all ? '' : `<t:FolderIds>${(o.folders ?? ['inbox']).map((f) => `<t:DistinguishedFolderId Id="${f}">${mbx}</t:DistinguishedFolderId>`).join('')}</t:FolderIds>`;
  return `<m:Subscribe><m:StreamingSubscriptionRequest${o.all ? ' SubscribeToAllFolders="true"' : ''}>${folders}<t:EventTypes>${events}</t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>`;
}

/** The first response message under Body/<op>Response/ResponseMessages. */
export function firstMessage(doc: XNode): XNode {
  const body = child(doc, NS.soap, 'Body')!;
  const response = body.children[0]!;
  return child(response, NS.m, 'ResponseMessages')!.children[0]!;
}

export function text(node: XNode | undefined, ns: string, name: string): string | undefined {
  return child(node, ns, name)?.text;
}

export async function startRig(options: Partial<EwsSandboxOptions> & { feed?: MailFeed; lister?: FolderLister; syntheticCount?: number } = {}): Promise<Rig> {
  const ca = createSandboxCa();
  const tls = ca.issueServer();
  const signer = await generateKeyPair('RS256', { extractable: true });
  const kid = 'ews-rig';
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(signer.publicKey)), kid, alg: 'RS256', use: 'sig' }] };
  const directory = options.directory ?? ewsDirectory();
  const sched = new ManualScheduler();
  const synthetic = new SyntheticMailboxes({ mailboxes: options.syntheticCount ?? 300, now: () => sched.now() });
  const resolver = (address: string) => {
    const found = directory.mailbox(address);
    if (found) return { address: found.mailbox.address, displayName: found.mailbox.displayName || found.mailbox.address, tenantId: found.tenant.id, fullAccess: found.mailbox.fullAccess };
    if (synthetic.has(address)) return { address: address.toLowerCase(), displayName: synthetic.displayName(address), tenantId: TENANT, fullAccess: [] };
    return undefined;
  };
  const ews = await startEwsSandbox({
    directory,
    jwks,
    tls,
    feed: options.feed ?? synthetic,
    lister: options.lister ?? synthetic,
    mailboxes: resolver,
    scheduler: sched,
    heartbeatMs: 5_000,
    ...options,
  });
  const agent = new Agent({ connect: { ca: ca.certPem } });
  const sign = (claims: Record<string, unknown>, key: CryptoKey = signer.privateKey) => {
    const t = Math.floor(sched.now() / 1000);
    return new SignJWT({ iat: t - 300, nbf: t - 300, exp: t + 3600, ...claims }).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).sign(key);
  };
  const base = {
    aud: 'https://outlook.office365.com',
    iss: `https://sts.windows.net/${TENANT}/`,
    tid: TENANT,
  };
  const readers: StreamReader[] = [];

  const send = async (method: 'GET' | 'POST', path: string, body: string | undefined, headers: Record<string, string>): Promise<Response> => {
    const res = await request(`${ews.origin}${path}`, { method, body, headers, dispatcher: agent });
    const t = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text: t, xml: () => parseXml(t) };
  };

  const rig: Rig = {
    ca,
    agent,
    ews,
    sched,
    synthetic,
    directory,
    jwks,
    appToken: (claims = {}, app = APP) => sign({ ...base, appid: app.appId, oid: app.sp, roles: app === APP ? ['full_access_as_app'] : ['IMAP.AccessAsApp'], ...claims }),
    userToken: (upn, scp = 'EWS.AccessAsUser.All') => sign({ ...base, appid: APP.appId, oid: 'b0000000-0000-4000-8000-0000000000e1', upn, scp }),
    async soap(body, o = {}) {
      const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', ...o.headers };
      if (o.auth) headers.authorization = o.auth;
      else headers.authorization = `Bearer ${o.token ?? (await rig.appToken())}`;
      const header = (o.impersonate ? impersonation(o.impersonate) : '') + (o.header ?? '');
      if (o.impersonate && !headers['x-anchormailbox']) headers['x-anchormailbox'] = o.impersonate;
      return send('POST', '/EWS/Exchange.asmx', envelope(body, header), headers);
    },
    post: (path, t, headers = {}) => send('POST', path, t, { 'content-type': 'text/xml; charset=utf-8', ...headers }),
    get: (path, headers = {}) => send('GET', path, undefined, headers),
    async stream(ids, o = {}) {
      const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', authorization: `Bearer ${await rig.appToken()}`, ...o.headers };
      const imp = o.impersonate ?? U1;
      if (!headers['x-anchormailbox'] && !o.headers?.cookie) headers['x-anchormailbox'] = imp;
      const body = envelope(
        `<m:GetStreamingEvents><m:SubscriptionIds>${ids.map((id) => `<t:SubscriptionId>${id}</t:SubscriptionId>`).join('')}</m:SubscriptionIds><m:ConnectionTimeout>${o.timeout ?? 30}</m:ConnectionTimeout></m:GetStreamingEvents>`,
        impersonation(imp),
      );
      const ac = new AbortController();
      const res = await request(`${ews.origin}/EWS/Exchange.asmx`, { method: 'POST', body, headers, dispatcher: agent, signal: ac.signal });
      let buf = '';
      const envelopes: string[] = [];
      const waiters: Array<{ resolve: (n: XNode) => void; reject: (e: Error) => void }> = [];
      let done = false;
      const pump = () => {
        for (;;) {
          const end = buf.indexOf('</Envelope>');
          if (end < 0) break;
          const one = buf.slice(0, end + '</Envelope>'.length);
          buf = buf.slice(end + '</Envelope>'.length);
          envelopes.push(one);
          reader.raw.push(one);
        }
        while (waiters.length && envelopes.length) waiters.shift()!.resolve(parseXml(envelopes.shift()!));
        if (done) while (waiters.length) waiters.shift()!.reject(new Error('stream ended'));
      };
      const ended = (async () => {
        try {
          for await (const chunk of res.body) {
            buf += (chunk as Buffer).toString('utf8');
            pump();
          }
          return true;
        } catch {
          return false;
        } finally {
          done = true;
          pump();
        }
      })();
      const reader: StreamReader = {
        status: res.statusCode,
        headers: res.headers,
        raw: [],
        ended,
        next: () =>
          new Promise<XNode>((resolve, reject) => {
            waiters.push({ resolve, reject });
            pump();
          }),
        close: () => ac.abort(),
      };
      readers.push(reader);
      return reader;
    },
    async close() {
      for (const r of readers) r.close();
      await ews.close();
      await agent.close();
      await synthetic.close();
    },
  };
  return rig;
}

/** The GetStreamingEventsResponseMessage of a streaming envelope. */
export function streamMessage(env: XNode): XNode {
  const body = child(env, NS.soap, 'Body')!;
  const resp = child(body, NS.m, 'GetStreamingEventsResponse')!;
  return child(child(resp, NS.m, 'ResponseMessages'), NS.m, 'GetStreamingEventsResponseMessage')!;
}

/** Reads envelopes until one carries notifications; returns its events (name + node), skipping heartbeats. */
export async function nextEvents(reader: StreamReader, limit = 20): Promise<Array<{ sub: string; type: string; node: XNode }>> {
  for (let i = 0; i < limit; i++) {
    const msg = streamMessage(await reader.next());
    const notes = kids(child(msg, NS.m, 'Notifications'), NS.m, 'Notification');
    if (notes.length === 0) continue;
    return notes.flatMap((n) => {
      const sub = text(n, NS.t, 'SubscriptionId')!;
      return n.children.filter((c) => c.name !== 'SubscriptionId').map((c) => ({ sub, type: c.name, node: c }));
    });
  }
  throw new Error('no notification');
}

export async function subscribeStreaming(rig: Rig, mailbox: string, o: Parameters<typeof streamingSubscribe>[0] = {}, headers: Record<string, string> = {}): Promise<{ id: string; res: Response }> {
  const res = await rig.soap(streamingSubscribe(o), { impersonate: mailbox, headers });
  const msg = firstMessage(res.xml());
  const id = text(msg, NS.m, 'SubscriptionId');
  if (!id) throw new Error(`subscribe failed: ${res.text}`);
  return { id, res };
}
