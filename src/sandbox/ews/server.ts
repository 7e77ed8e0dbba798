/**
 * The HTTP side of the sandbox EWS: one Fastify HTTPS listener with
 *   POST /EWS/Exchange.asmx                                  EWS SOAP
 *   POST /autodiscover/autodiscover.svc, …/autodiscover.xml  Autodiscover SOAP, POX
 *   GET  /autodiscover/autodiscover.json/v1.0/{smtp}         Autodiscover v2
 *
 * Every EWS request runs: credentials (auth.ts; 401 with an empty body) → XML (malformed: fault
 * ErrorSchemaValidation) → impersonation header (faults ErrorInvalidExchangeImpersonationHeader,
 * ErrorNonExistentMailbox, ErrorImpersonateUserDenied) → routing to a backend (backends.ts) →
 * the `busy` test hook (ErrorServerBusy as HTTP 500 fault or HTTP 200 error message, both with
 * BackOffMilliseconds) → the operation (operations.ts; GetStreamingEvents here, on a hijacked
 * response handed to streaming.ts).
 *
 * GetStreamingEvents checks, in this order: ConnectionTimeout 1–30, at most `maxStreamingIds`
 * SubscriptionIds [both errors: code ErrorInvalidRequest, texts APPROX], HangingConnectionLimit per
 * account or impersonated mailbox (ErrorExceededConnectionCount), the subscriptions (unknown or on
 * another backend: ErrorSubscriptionNotFound with ErrorSubscriptionIds; all of them → the
 * connection closes, some of them → they are reported first and the rest streams [APPROX]).
 * Refusals are single envelopes in the streaming shape with `ConnectionStatus Closed`.
 *
 * Exchange Online profile: EWS requests fail from the permanent shutdown (April 1, 2027; facts §5.1)
 * and, from October 1, 2026, for apps not in `onlineAllowedAppIds` when that list is set (the
 * EWSEnabled allow list) [APPROX: HTTP 403 with fault ErrorAccessDenied].
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../log/index.ts';
import type { KeyAndCert } from '../ca.ts';
import type { SandboxDirectory } from '../directory.ts';
import type { MailFeed } from '../mailfeed.ts';
import { authenticate, mayAccess, type EwsMailboxInfo, type EwsPrincipal, type JwksSource, type MailboxResolver, type WindowsAuth } from './auth.ts';
import { pox, soapGetUserSettings, v2Json, type AutodiscoverContext, type HttpAnswer } from './autodiscover.ts';
import { OVERRIDE_COOKIE, readCookie, type Backends, type EwsProfile } from './backends.ts';
import type { Scheduler } from './clock.ts';
import { EwsFault, EwsResponseError, faultEnvelope } from './errors.ts';
import type { Hub, Subscription } from './hub.ts';
import { findSubscription, getEvents, getFolder, getItem, subscribe, syncFolderItems, unsubscribe, type FolderLister, type Limits, type OpContext } from './operations.ts';
import { PushSender, type PushStats } from './push.ts';
import { errorMessage, responseEnvelope, streamingEnvelope } from './soap.ts';
import { StreamConn, type StreamStats } from './streaming.ts';
import { child, el, kids, NS, parseXml, tx, XmlError, type XEl, type XNode } from './xml.ts';
import type { Dispatcher } from 'undici';

export interface EwsStats {
  /** EWS operations received, by name. */
  operations: Record<string, number>;
  /** Responses by HTTP status (streaming responses count once, when they start). */
  responses: Record<number, number>;
  /** ErrorServerBusy answers given by the `busy` hook. */
  busy: number;
  /** Subscribe answers that set the affinity cookie. */
  affinityCookies: number;
  streams: StreamStats;
  push: PushStats;
}

export interface ServerContext {
  directory: SandboxDirectory;
  jwks: JwksSource;
  profile: EwsProfile;
  backends: Backends;
  hub: Hub;
  feed: MailFeed;
  lister?: FolderLister;
  mailboxes: MailboxResolver;
  limits: Limits;
  scheduler: Scheduler;
  heartbeatMs: number;
  stats: EwsStats;
  log: Logger;
  /** Set once listening: the EWS URL autodiscover hands out. */
  ewsUrl: string;
  pushDispatcher: Dispatcher;
  pushTimeoutMs?: number;
  onlineAllowedAppIds?: string[];
  busyHook: { count: number; backOffMs: number; shape: 'fault' | 'message' };
  conns: Set<StreamConn>;
  /** Windows authentication (NTLM) state per TCP connection, and whether Basic is refused. */
  windows: WindowsAuth;
}

const EXO_ALLOW_LIST_FROM = Date.UTC(2026, 9, 1);
const EXO_SHUTDOWN = Date.UTC(2027, 3, 1);

interface Caller {
  principal: EwsPrincipal;
  acting?: EwsMailboxInfo;
  impersonated: boolean;
  owner: string;
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function buildEwsServer(ctx: ServerContext, tls: KeyAndCert) {
  const app = Fastify({ https: { key: tls.keyPem, cert: tls.certPem }, bodyLimit: 10 * 1024 * 1024, logger: false, forceCloseConnections: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.addHook('onResponse', async (_req, reply) => {
    ctx.stats.responses[reply.statusCode] = (ctx.stats.responses[reply.statusCode] ?? 0) + 1;
  });

  const sendFault = (reply: FastifyReply, fault: EwsFault) => {
    for (const [k, v] of Object.entries(fault.headers)) reply.header(k, v);
    if (fault.status === 401) return reply.code(401).send('');
    return reply.code(fault.status).type('text/xml; charset=utf-8').send(faultEnvelope(fault));
  };

  app.setErrorHandler((error: { code?: string; message?: string }, _req, reply) => {
    if (error instanceof EwsFault) return sendFault(reply, error);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendFault(reply, new EwsFault('ErrorInvalidRequest', { status: 413 }));
    ctx.log.error({ err: error }, 'ews sandbox: unexpected error');
    return sendFault(reply, new EwsFault('ErrorInternalServerError'));
  });

  const adContext = (): AutodiscoverContext => ({
    profile: ctx.profile,
    backends: ctx.backends,
    mailboxes: ctx.mailboxes,
    ewsUrl: ctx.ewsUrl,
    visible: (principal, address) => {
      const box = ctx.mailboxes(address);
      return box && (!box.tenantId || box.tenantId.toLowerCase() === principal.tenantId.toLowerCase()) ? box : undefined;
    },
  });
  const answer = (reply: FastifyReply, a: HttpAnswer) => reply.code(a.status).type(a.contentType).send(a.body);

  for (const url of ['/autodiscover/autodiscover.svc', '/Autodiscover/Autodiscover.svc']) {
    app.post(url, async (req, reply) => {
      const principal = await authenticate(authOptions(ctx, req), header(req, 'authorization'), ctx.scheduler.now());
      return answer(reply, soapGetUserSettings(adContext(), principal, String(req.body ?? '')));
    });
  }
  for (const url of ['/autodiscover/autodiscover.xml', '/Autodiscover/Autodiscover.xml']) {
    app.post(url, async (req, reply) => {
      const principal = await authenticate(authOptions(ctx, req), header(req, 'authorization'), ctx.scheduler.now());
      return answer(reply, pox(adContext(), principal, String(req.body ?? ''), ctx.scheduler.now()));
    });
  }
  app.get('/autodiscover/autodiscover.json/v1.0/:smtp', async (req, reply) => {
    const { smtp } = req.params as { smtp: string };
    const q = req.query as Record<string, string | undefined>;
    const protocol = Object.entries(q).find(([k]) => k.toLowerCase() === 'protocol')?.[1];
    return answer(reply, v2Json(adContext(), smtp, protocol));
  });

  for (const url of ['/EWS/Exchange.asmx', '/ews/exchange.asmx', '/EWS/exchange.asmx']) {
    app.post(url, (req, reply) => handleEws(ctx, req, reply));
  }
  return app;
}

function authOptions(ctx: ServerContext, req: FastifyRequest) {
  return { directory: ctx.directory, jwks: ctx.jwks, online: ctx.profile.online, realm: header(req, 'host')?.split(':')[0] ?? 'localhost', windows: ctx.windows, connection: req.raw.socket };
}

async function handleEws(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply) {
  const now = ctx.scheduler.now();
  const principal = await authenticate(authOptions(ctx, req), header(req, 'authorization'), now);

  if (ctx.profile.online) {
    const blocked =
      now >= EXO_SHUTDOWN ||
      (now >= EXO_ALLOW_LIST_FROM && ctx.onlineAllowedAppIds !== undefined && !(principal.kind === 'app' && ctx.onlineAllowedAppIds.map((a) => a.toLowerCase()).includes(principal.appId.toLowerCase())));
    if (blocked) throw new EwsFault('ErrorAccessDenied', { status: 403, text: 'EWS is not available for this application in Exchange Online.' });
  }

  let root: XNode;
  try {
    root = parseXml(String(req.body ?? ''));
  } catch (err) {
    throw new EwsFault('ErrorSchemaValidation', { text: `The request failed schema validation: ${err instanceof XmlError ? err.message : 'malformed XML'}` });
  }
  if (root.ns !== NS.soap || root.name !== 'Envelope') throw new EwsFault('ErrorSchemaValidation', { text: 'The request failed schema validation: the root element is not a SOAP 1.1 Envelope.' });
  const soapHeader = child(root, NS.soap, 'Header');
  const op = child(root, NS.soap, 'Body')?.children[0];
  if (!op || op.ns !== NS.m) throw new EwsFault('ErrorSchemaValidation', { text: 'The request failed schema validation: the SOAP Body holds no EWS operation.' });
  ctx.stats.operations[op.name] = (ctx.stats.operations[op.name] ?? 0) + 1;

  const caller = resolveCaller(ctx, principal, soapHeader);

  const anchor = header(req, 'x-anchormailbox');
  const preferAffinity = (header(req, 'x-preferserveraffinity') ?? '').toLowerCase() === 'true';
  const cookie = readCookie(header(req, 'cookie'), OVERRIDE_COOKIE);
  const route = ctx.backends.route({ preferAffinity, cookie, anchor, anchorKnown: anchor ? ctx.mailboxes(anchor) !== undefined : false });
  reply.header('x-feproxyinfo', `${ctx.backends.servers[0]}`);
  reply.header('x-calculatedbetarget', route.server);
  reply.header('x-diaginfo', route.server.split('.')[0]!.toUpperCase());
  reply.header('request-id', randomUUID());

  if (ctx.busyHook.count > 0) {
    ctx.busyHook.count--;
    ctx.stats.busy++;
    const messageXml = { BackOffMilliseconds: String(ctx.busyHook.backOffMs) };
    if (ctx.busyHook.shape === 'fault') throw new EwsFault('ErrorServerBusy', { messageXml });
    const err = new EwsResponseError('ErrorServerBusy', undefined, messageXml);
    if (op.name === 'GetStreamingEvents') return streamOnce(ctx, reply, errorMessage('GetStreamingEvents', err, [tx('m:ConnectionStatus', 'Closed')]));
    return sendXml(ctx, reply, el(`m:${op.name}Response`, { 'xmlns:m': NS.m, 'xmlns:t': NS.t }, [el('m:ResponseMessages', [errorMessage(op.name, err)])]));
  }

  const opCtx: OpContext = {
    hub: ctx.hub,
    feed: ctx.feed,
    lister: ctx.lister,
    mailboxes: ctx.mailboxes,
    limits: ctx.limits,
    principal,
    acting: caller.acting,
    backend: route.server,
    owner: caller.owner,
    startPush: (sub) => startPush(ctx, sub),
  };

  switch (op.name) {
    case 'Subscribe': {
      const response = await subscribe(opCtx, op);
      // The first affinity Subscribe of a group gets the cookies (facts §5.5 step 3).
      if (preferAffinity && anchor && route.by !== 'cookie' && isSuccess(response)) {
        for (const c of ctx.backends.affinityCookies(route.server, anchor)) reply.header('set-cookie', c);
        ctx.stats.affinityCookies++;
      }
      return sendXml(ctx, reply, response);
    }
    case 'Unsubscribe':
      return sendXml(ctx, reply, unsubscribe(opCtx, op));
    case 'GetEvents':
      return sendXml(ctx, reply, getEvents(opCtx, op, (sub) => ctx.hub.armExpiry(sub, (sub.minutes ?? 30) * 60_000)));
    case 'GetItem':
      return sendXml(ctx, reply, await getItem(opCtx, op));
    case 'GetFolder':
      return sendXml(ctx, reply, await getFolder(opCtx, op));
    case 'SyncFolderItems':
      return sendXml(ctx, reply, await syncFolderItems(opCtx, op));
    case 'GetStreamingEvents':
      return getStreamingEvents(ctx, opCtx, caller, op, reply);
    default:
      throw new EwsFault('ErrorInvalidRequest', { text: `The request is invalid: the operation '${op.name}' is not available in the sandbox EWS.` });
  }
}

function isSuccess(response: XEl): boolean {
  const messages = response.children?.[0];
  const first = typeof messages === 'object' && messages ? messages.children?.[0] : undefined;
  return typeof first === 'object' && !!first && first.attrs?.ResponseClass === 'Success';
}

function resolveCaller(ctx: ServerContext, principal: EwsPrincipal, soapHeader: XNode | undefined): Caller {
  const sid = child(child(soapHeader, NS.t, 'ExchangeImpersonation'), NS.t, 'ConnectingSID');
  const id = principal.kind === 'app' ? `app:${principal.appId}` : `user:${principal.upn.toLowerCase()}`;
  if (!sid) {
    if (principal.kind === 'app') throw new EwsFault('ErrorInvalidExchangeImpersonationHeader');
    const own = ctx.mailboxes(principal.upn);
    return { principal, acting: own && mayAccess(principal, own) ? own : undefined, impersonated: false, owner: id };
  }
  const value =
    child(sid, NS.t, 'SmtpAddress')?.text ?? child(sid, NS.t, 'PrimarySmtpAddress')?.text ?? child(sid, NS.t, 'PrincipalName')?.text;
  if (!value) {
    if (child(sid, NS.t, 'SID')) throw new EwsFault('ErrorNonExistentMailbox', { text: 'The SID in the ExchangeImpersonation header cannot be resolved by the sandbox; use SmtpAddress.' });
    throw new EwsFault('ErrorSchemaValidation', { text: "The request failed schema validation: The element 'ConnectingSID' has incomplete content." });
  }
  const box = ctx.mailboxes(value);
  if (!box || (box.tenantId && box.tenantId.toLowerCase() !== principal.tenantId.toLowerCase())) throw new EwsFault('ErrorNonExistentMailbox');
  if (!mayAccess(principal, box, true)) throw new EwsFault('ErrorImpersonateUserDenied');
  return { principal, acting: box, impersonated: true, owner: `mailbox:${box.address.toLowerCase()}` };
}

function sendXml(ctx: ServerContext, reply: FastifyReply, response: XEl) {
  return reply.code(200).type('text/xml; charset=utf-8').send(responseEnvelope(ctx.profile, response));
}

/** A one-envelope streaming answer (refusals): chunked like a real stream, then closed. */
function streamOnce(ctx: ServerContext, reply: FastifyReply, message: XEl) {
  reply.hijack();
  const res = reply.raw;
  for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) res.setHeader(k, v as string);
  res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8', 'cache-control': 'private' });
  // write + end (not end(data)): Node then sends it chunked, as a stream is.
  res.write(streamingEnvelope(ctx.profile, message));
  res.end();
  ctx.stats.responses[200] = (ctx.stats.responses[200] ?? 0) + 1;
}

function startPush(ctx: ServerContext, sub: Subscription): void {
  // The sender registers itself as the subscription's reader; Unsubscribe and close() stop it there.
  new PushSender(
    sub,
    {
      hub: ctx.hub,
      scheduler: ctx.scheduler,
      stats: ctx.stats.push,
      requestTimeoutMs: ctx.pushTimeoutMs,
      onError: (err, where) => ctx.log.debug({ err, where }, 'ews sandbox: push'),
    },
    ctx.pushDispatcher,
  );
}

function getStreamingEvents(ctx: ServerContext, opCtx: OpContext, caller: Caller, op: XNode, reply: FastifyReply) {
  const refuse = (err: EwsResponseError, extra: XEl['children'] = []) =>
    streamOnce(ctx, reply, errorMessage('GetStreamingEvents', err, [...extra, tx('m:ConnectionStatus', 'Closed')]));
  const timeoutText = child(op, NS.m, 'ConnectionTimeout')?.text ?? '';
  const timeout = /^\d{1,4}$/.test(timeoutText) ? Number(timeoutText) : NaN;
  if (!(timeout >= 1 && timeout <= 30)) return refuse(new EwsResponseError('ErrorInvalidRequest', 'The ConnectionTimeout must be between 1 and 30 minutes.'));
  const container = child(op, NS.m, 'SubscriptionIds');
  const ids = [...kids(container, NS.t, 'SubscriptionId'), ...kids(container, NS.m, 'SubscriptionId'), ...kids(op, NS.m, 'SubscriptionId')].map((n) => n.text);
  if (ids.length === 0) throw new EwsFault('ErrorSchemaValidation', { text: "The request failed schema validation: The element 'SubscriptionIds' has incomplete content." });
  if (ids.length > ctx.limits.maxStreamingIds) {
    return refuse(new EwsResponseError('ErrorInvalidRequest', `The request contains ${ids.length} subscription IDs; a GetStreamingEvents request can contain at most ${ctx.limits.maxStreamingIds}.`));
  }
  const open = [...ctx.conns].filter((c) => c.owner === caller.owner).length;
  if (open >= ctx.limits.hangingConnections) return refuse(new EwsResponseError('ErrorExceededConnectionCount'));

  const found: Subscription[] = [];
  const missing: string[] = [];
  for (const id of ids) {
    const sub = findSubscription(opCtx, id);
    if (sub && sub.kind === 'streaming') found.push(sub);
    else missing.push(id);
  }
  const missingEl = el('m:ErrorSubscriptionIds', missing.map((id) => tx('m:SubscriptionId', id)));
  const notFound = new EwsResponseError('ErrorSubscriptionNotFound');
  if (found.length === 0) return refuse(notFound, [missingEl]);

  reply.hijack();
  const conn = new StreamConn({
    res: reply.raw,
    hub: ctx.hub,
    profile: ctx.profile,
    scheduler: ctx.scheduler,
    heartbeatMs: ctx.heartbeatMs,
    timeoutMinutes: timeout,
    owner: caller.owner,
    stats: ctx.stats.streams,
    onClose: (c) => ctx.conns.delete(c),
  });
  ctx.conns.add(conn);
  ctx.stats.responses[200] = (ctx.stats.responses[200] ?? 0) + 1;
  conn.start(found, missing.length ? [errorMessage('GetStreamingEvents', notFound, [missingEl])] : []);
}
