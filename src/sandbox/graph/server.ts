/**
 * The HTTP side of the sandbox Graph: one Fastify route takes every request and dispatches it by
 * Graph's own path rules (segments matched case-insensitively, `users('x')` key syntax, action
 * names with or without the `microsoft.graph.` prefix), so unknown paths fail with Graph's
 * "Resource not found for the segment" and not with Fastify's 404. Request bodies are read raw
 * (JSON and base64 MIME alike) up to Graph's 4 MB request limit.
 *
 * Every request runs: token (auth.ts) → route → mailbox → permission → throttle slot (throttle.ts)
 * → the operation on Dovecot (store.ts). Every response carries request-id, client-request-id (the
 * caller's, echoed, or the request-id) and x-ms-ags-diagnostic, and every error Graph's envelope.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../log/index.ts';
import type { KeyAndCert } from '../ca.ts';
import type { SandboxDirectory } from '../directory.ts';
import { maySendAs, requirePermission, resolveMailbox, verifyToken, type JwksSource, type Operation, type Principal, type ResolvedMailbox } from './auth.ts';
import { incrementalEntries, initialEntries, knownAfter, type ChangeType, type DeltaQuery, type Round, type TokenCache } from './delta.ts';
import { handleDirectory, isDirectoryPath } from './directory-api.ts';
import { handleAdminApi, isAdminApiPath } from '../exchange/adminapi.ts';
import { errorBody, GraphError, graphErrors } from './errors.ts';
import { folderId, messageId, parseFolderId, parseMessageId, WELL_KNOWN_FOLDERS, wellKnownByPath, type MessageRef } from './ids.ts';
import { pathSegments } from './paths.ts';
import { composeMessage, decodeBase64, isAddress, messageResource, parseSelect, prop, readMimeEnvelope, stripBcc } from './message.ts';
import { FolderMissing, type GraphBackend, type GraphMailStore, type StoredMessage } from './store.ts';
import type { Subscriptions } from './subscriptions.ts';
import type { Throttle } from './throttle.ts';

/** Graph's request size limit: 4 MB (see graphErrors.tooLarge for the sources). */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const DEFAULT_PAGE_SIZE = 10;
const MAX_PAGE_SIZE = 1000;
const JSON_TYPE = 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';
const AGS_DIAGNOSTIC = JSON.stringify({ ServerInfo: { DataCenter: 'Sandbox', Slice: 'E', Ring: '5', ScaleUnit: '000', RoleInstance: 'SB1PEPF00000001' } });

export interface SentRecord {
  /** The mailbox in the path. */
  mailbox: string;
  form: 'json' | 'mime';
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  /** Recipients delivered into sandbox mailboxes over LMTP. */
  delivered: string[];
  /** Sandbox mailboxes LMTP refused, with its reply. */
  rejected: Array<{ recipient: string; response: string }>;
  /** Recipients outside the sandbox (recorded in `outbound`, not delivered). */
  outbound: string[];
  savedToSentItems: boolean;
  at: number;
}

export interface OutboundMessage {
  from: string;
  to: string[];
  raw: Buffer;
  at: number;
}

export interface GraphStats {
  /** Requests answered, by HTTP status. */
  responses: Record<number, number>;
  /** 429s sent (concurrency, rate, forced). */
  throttled: number;
  /** Requests that changed the directory (applications, service principals, assignments, grants). */
  directoryWrites: number;
  sent: SentRecord[];
  outbound: OutboundMessage[];
}

export interface GraphContext {
  directory: SandboxDirectory;
  jwks: JwksSource;
  /** Delivery into sandbox mailboxes (sendMail): Dovecot's LMTP, or the synthetic mailboxes for theirs. */
  backend: Pick<GraphBackend, 'deliver'>;
  store: GraphMailStore;
  subscriptions: Subscriptions;
  throttle: Throttle;
  tokens: TokenCache;
  now: () => number;
  stats: GraphStats;
  log: Logger;
  /** When the sandbox first saw each message's MODSEQ (for lastModifiedDateTime). */
  modified: Map<string, { modseq: bigint; at: number }>;
  /** Delay before an app role assignment made through Graph reaches tokens (directory-api.ts). */
  propagationMs?: number;
  /** Called after a Graph request changed the directory (apps, service principals, grants). */
  onDirectoryChange?: () => void | Promise<void>;
}

type Route =
  | { kind: 'sendMail' }
  | { kind: 'message'; message: string; folder?: string; action?: 'value' | 'move' | 'permanentDelete' }
  | { kind: 'folders' }
  | { kind: 'folder'; folder: string }
  | { kind: 'delta'; folder: string };

interface ParsedPath {
  /** The user segment as given ('me' for /me). */
  user: string;
  route: Route;
}

interface Result {
  status: number;
  json?: unknown;
  raw?: Buffer;
  contentType?: string;
}

interface RequestIds {
  requestId: string;
  clientRequestId: string;
}

export function buildGraphServer(ctx: GraphContext, tls: KeyAndCert) {
  const app = Fastify({ https: { key: tls.keyPem, cert: tls.certPem }, bodyLimit: MAX_REQUEST_BYTES, logger: false, forceCloseConnections: true });
  const ids = new WeakMap<FastifyRequest, RequestIds>();
  const idsOf = (req: FastifyRequest): RequestIds => ids.get(req) ?? { requestId: '', clientRequestId: '' };

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async (req, reply) => {
    const requestId = randomUUID();
    const given = req.headers['client-request-id'];
    const clientRequestId = (Array.isArray(given) ? given[0] : given) || requestId;
    ids.set(req, { requestId, clientRequestId });
    reply.header('request-id', requestId);
    reply.header('client-request-id', clientRequestId);
    reply.header('x-ms-ags-diagnostic', AGS_DIAGNOSTIC);
    reply.header('strict-transport-security', 'max-age=31536000');
    reply.header('cache-control', 'private');
  });
  app.addHook('onResponse', async (_req, reply) => {
    ctx.stats.responses[reply.statusCode] = (ctx.stats.responses[reply.statusCode] ?? 0) + 1;
  });

  const sendError = (req: FastifyRequest, reply: FastifyReply, err: GraphError) => {
    if (err.status === 429) ctx.stats.throttled++;
    for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
    return reply.code(err.status).type('application/json').send(errorBody(err, idsOf(req), ctx.now()));
  };

  app.setErrorHandler((error: { code?: string; statusCode?: number; message?: string }, req, reply) => {
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(req, reply, graphErrors.tooLarge());
    if (error instanceof GraphError) return sendError(req, reply, error);
    if (error.statusCode && error.statusCode < 500) return sendError(req, reply, graphErrors.badJson());
    ctx.log.error({ err: error }, 'graph sandbox: unexpected error');
    return sendError(req, reply, graphErrors.internal());
  });

  // Methods the catch-all route does not take (PROPFIND, …) still answer in Graph's envelope.
  app.setNotFoundHandler((req, reply) => sendError(req, reply, graphErrors.method()));

  app.route({
    method: ['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS'],
    url: '/*',
    handler: async (req, reply) => {
      try {
        const result = await handle(ctx, req);
        reply.code(result.status);
        if (result.raw) return reply.type(result.contentType ?? 'application/octet-stream').send(result.raw);
        if (result.json !== undefined) return reply.type(JSON_TYPE).send(JSON.stringify(result.json));
        return reply.send();
      } catch (err) {
        if (err instanceof GraphError) return sendError(req, reply, err);
        ctx.log.error({ err }, 'graph sandbox: request failed');
        return sendError(req, reply, graphErrors.internal());
      }
    },
  });
  return app;
}

// --- dispatch ---------------------------------------------------------------------------------------

async function handle(ctx: GraphContext, req: FastifyRequest): Promise<Result> {
  const url = new URL(req.url, 'https://graph.sandbox.invalid');
  if (isAdminApiPath(url.pathname)) {
    // Exchange Online's admin API lives on outlook.office365.com; the sandbox serves it here, with
    // its own token rules (an Exchange Online token, not a Graph one).
    const body = req.body instanceof Buffer ? req.body : undefined;
    return await handleAdminApi(ctx.directory, ctx.jwks, { method: req.method, pathname: url.pathname, authorization: header(req, 'authorization'), body, now: ctx.now() });
  }
  const principal = await verifyToken(ctx.directory, ctx.jwks, header(req, 'authorization'), ctx.now());
  if (isDirectoryPath(url.pathname)) {
    // Applications, service principals, grants (directory-api.ts): tenant objects, no mailbox.
    const body = req.body instanceof Buffer ? req.body : undefined;
    return await handleDirectory(
      {
        directory: ctx.directory,
        now: ctx.now,
        propagationMs: ctx.propagationMs,
        onChange: async () => {
          ctx.stats.directoryWrites++;
          await ctx.onDirectoryChange?.();
        },
      },
      { method: req.method, url, body, principal },
    );
  }
  const subscriptions = subscriptionPath(url.pathname);
  if (subscriptions) {
    // Subscriptions are the app's, not a mailbox's: no mailbox in the path, no mailbox throttle slot.
    const body = req.body instanceof Buffer ? req.body : undefined;
    const origin = `https://${req.headers.host ?? 'graph.microsoft.com'}`;
    return await ctx.subscriptions.handle({ method: req.method, ids: subscriptions.ids, body, principal, origin });
  }
  const path = parsePath(url.pathname);
  const op = operation(path.route, req.method);
  const target = resolveMailbox(principal, path.user === 'me' ? 'me' : path.user, ctx.directory);
  requirePermission(principal, target, op);
  const slot = ctx.throttle.acquire(principal.appId, target.address);
  if (slot instanceof GraphError) throw slot;
  try {
    await ctx.throttle.waitIfHeld(target.address);
    const origin = `https://${req.headers.host ?? 'graph.microsoft.com'}`;
    const r: Req = { ctx, req, url, origin, principal, target, user: path.user };
    const route = path.route;
    switch (route.kind) {
      case 'sendMail':
        return await sendMail(r);
      case 'folders':
        return await listFolders(r);
      case 'folder':
        return await getFolder(r, route.folder);
      case 'delta':
        return await delta(r, route.folder);
      case 'message':
        if (route.folder !== undefined) await resolveFolder(r, route.folder);
        if (route.action === 'value') return await getValue(r, route.message);
        if (route.action === 'move') return await moveMessage(r, route.message);
        if (route.action === 'permanentDelete') return await permanentDelete(r, route.message);
        if (req.method === 'PATCH') return await patchMessage(r, route.message);
        if (req.method === 'DELETE') return await deleteMessage(r, route.message);
        return await getMessage(r, route.message);
    }
  } finally {
    slot.release();
  }
}

interface Req {
  ctx: GraphContext;
  req: FastifyRequest;
  url: URL;
  origin: string;
  principal: Principal;
  target: ResolvedMailbox;
  user: string;
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A request path's segments; a bad percent-encoding is Graph's error for that segment. */
const segments = (pathname: string): string[] => pathSegments(pathname, (raw) => graphErrors.segment(raw));

/** /v1.0/subscriptions[/{id}[/reauthorize]]: the segments after `subscriptions`, or undefined for other paths. */
function subscriptionPath(pathname: string): { ids: string[] } | undefined {
  const segs = segments(pathname);
  if (segs[0]?.toLowerCase() !== 'v1.0' || segs[1]?.toLowerCase() !== 'subscriptions') return undefined;
  return { ids: segs.slice(2) };
}

function parsePath(pathname: string): ParsedPath {
  const segs = segments(pathname);
  const [version, root, ...rest] = segs;
  if (version === undefined) throw graphErrors.segment('');
  if (version.toLowerCase() !== 'v1.0') throw graphErrors.version(version);
  if (root === undefined) throw graphErrors.segment(version);
  let user: string;
  let tail: string[];
  if (root.toLowerCase() === 'me') {
    user = 'me';
    tail = rest;
  } else if (root.toLowerCase() === 'users' && rest[0] !== undefined) {
    user = rest[0];
    tail = rest.slice(1);
  } else {
    throw graphErrors.segment(root);
  }
  const name = (i: number) => (tail[i] ?? '').toLowerCase().replace(/^microsoft\.graph\./, '').replace(/\(\)$/, '');
  const unknown = (i: number): never => {
    throw graphErrors.segment(tail[i] ?? '');
  };
  const messageRoute = (at: number, folder?: string): Route => {
    const id = tail[at + 1];
    if (id === undefined) unknown(at);
    if (tail.length === at + 2) return { kind: 'message', message: id as string, folder };
    if (tail.length === at + 3) {
      const action = name(at + 2);
      if (action === '$value') return { kind: 'message', message: id as string, folder, action: 'value' };
      if (action === 'move') return { kind: 'message', message: id as string, folder, action: 'move' };
      if (action === 'permanentdelete') return { kind: 'message', message: id as string, folder, action: 'permanentDelete' };
    }
    return unknown(at + 2);
  };
  switch (name(0)) {
    case 'sendmail':
      if (tail.length === 1) return { user, route: { kind: 'sendMail' } };
      return unknown(1);
    case 'messages':
      return { user, route: messageRoute(0) };
    case 'mailfolders': {
      const folder = tail[1];
      if (folder === undefined) return { user, route: { kind: 'folders' } };
      if (tail.length === 2) return { user, route: { kind: 'folder', folder } };
      if (name(2) !== 'messages') return unknown(2);
      if (tail.length === 4 && name(3) === 'delta') return { user, route: { kind: 'delta', folder } };
      return { user, route: messageRoute(2, folder) };
    }
    default:
      return unknown(0);
  }
}

/** The permission a route and method need; 405 for a method the resource does not take. */
function operation(route: Route, method: string): Operation {
  const allow = (methods: string[], op: Operation): Operation => {
    if (!methods.includes(method)) throw graphErrors.method();
    return op;
  };
  switch (route.kind) {
    case 'sendMail':
      return allow(['POST'], 'send');
    case 'folders':
    case 'folder':
      return allow(['GET'], 'readFolder');
    case 'delta':
      return allow(['GET'], 'read');
    case 'message':
      if (route.action === 'value') return allow(['GET'], 'read');
      if (route.action) return allow(['POST'], 'write');
      if (method === 'GET') return 'read';
      return allow(['PATCH', 'DELETE'], 'write');
  }
}

// --- folders and ids -----------------------------------------------------------------------------

interface FolderRefResolved {
  path: string;
  id: string;
}

/** A folder segment (well-known name or id) as an IMAP path of the target mailbox. */
async function resolveFolder(r: Req, segment: string): Promise<FolderRefResolved> {
  const wk = WELL_KNOWN_FOLDERS[segment.toLowerCase()];
  let path: string;
  if (wk) {
    path = wk.path;
  } else {
    const ref = parseFolderId(segment);
    if (!ref) throw graphErrors.idMalformed();
    if (ref.mailbox !== r.target.address.toLowerCase()) throw graphErrors.wrongMailbox();
    path = ref.folder;
  }
  const status = await r.ctx.store.status(r.target.address, path);
  if (!status) throw graphErrors.itemNotFound();
  return { path: status.path, id: folderId({ mailbox: r.target.address, folder: status.path }) };
}

function messageRef(r: Req, id: string): MessageRef {
  const ref = parseMessageId(id);
  if (!ref) throw graphErrors.idMalformed();
  if (ref.mailbox !== r.target.address.toLowerCase()) throw graphErrors.wrongMailbox();
  return ref;
}

function userPath(r: Req): string {
  return r.user === 'me' ? 'me' : `users('${encodeURIComponent(r.user)}')`;
}

function preferences(req: FastifyRequest): { maxPageSize?: number; bodyType?: 'text' | 'html' } {
  const out: { maxPageSize?: number; bodyType?: 'text' | 'html' } = {};
  for (const p of (header(req, 'prefer') ?? '').split(',')) {
    const [k = '', v = ''] = p.split('=').map((s) => s.trim());
    if (k.toLowerCase() === 'odata.maxpagesize' && /^\d+$/.test(v)) out.maxPageSize = Number(v);
    if (k.toLowerCase() === 'outlook.body-content-type') {
      const t = v.replace(/"/g, '').toLowerCase();
      if (t === 'text' || t === 'html') out.bodyType = t;
    }
  }
  return out;
}

/** The Graph resource of a stored message. */
async function resource(r: Req, ref: Omit<MessageRef, 'uid'>, m: StoredMessage, select?: string[], bodyType?: 'text' | 'html'): Promise<Record<string, unknown>> {
  const id = messageId({ ...ref, uid: m.uid });
  const seen = r.ctx.modified.get(id);
  let lastModified = seen?.at ?? 0;
  if (!seen || seen.modseq !== m.modseq) {
    // First sight: its arrival is the best guess; a later MODSEQ change: now.
    lastModified = seen ? r.ctx.now() : 0;
    r.ctx.modified.set(id, { modseq: m.modseq, at: lastModified });
  }
  return messageResource(
    {
      id,
      parentFolderId: folderId({ mailbox: ref.mailbox, folder: ref.folder }),
      raw: m.source,
      flags: m.flags,
      internalDate: m.internalDate,
      modseq: m.modseq,
      lastModified,
    },
    { select, bodyType },
  );
}

async function fetchOne(r: Req, ref: MessageRef): Promise<StoredMessage> {
  try {
    const [m] = await r.ctx.store.fetch(r.target.address, ref.folder, ref.uidValidity, [ref.uid]);
    if (!m) throw graphErrors.itemNotFound();
    return m;
  } catch (err) {
    if (err instanceof FolderMissing) throw graphErrors.itemNotFound();
    throw err;
  }
}

async function readJson(req: FastifyRequest): Promise<unknown> {
  const body = req.body instanceof Buffer ? req.body : Buffer.alloc(0);
  if (body.length === 0 || !body.toString('utf8').trim()) throw graphErrors.emptyPayload();
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw graphErrors.badJson();
  }
}

// --- operations --------------------------------------------------------------------------------------

async function getMessage(r: Req, id: string): Promise<Result> {
  const ref = messageRef(r, id);
  const select = parseSelect(r.url.searchParams.get('$select') ?? undefined);
  const m = await fetchOne(r, ref);
  const json = await resource(r, ref, m, select, preferences(r.req).bodyType);
  return { status: 200, json: { '@odata.context': `${r.origin}/v1.0/$metadata#users('${encodeURIComponent(r.user)}')/messages/$entity`, ...json } };
}

async function getValue(r: Req, id: string): Promise<Result> {
  const m = await fetchOne(r, messageRef(r, id));
  // The MIME content exactly as stored; Graph serves it as text/plain.
  return { status: 200, raw: m.source, contentType: 'text/plain' };
}

async function patchMessage(r: Req, id: string): Promise<Result> {
  const ref = messageRef(r, id);
  const body = await readJson(r.req);
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw graphErrors.badJson();
  const add: string[] = [];
  const remove: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    if (key.startsWith('@odata.')) continue;
    if (key.toLowerCase() === 'isread') {
      if (typeof value !== 'boolean') throw graphErrors.badJson();
      (value ? add : remove).push('\\Seen');
    } else if (key.toLowerCase() === 'flag') {
      const status = String(prop(value, 'flagStatus') ?? '').toLowerCase();
      if (status === 'flagged') add.push('\\Flagged');
      else if (status === 'notflagged' || status === 'complete') remove.push('\\Flagged');
      else throw graphErrors.badJson();
    } else {
      throw graphErrors.unsupported(`Updating '${key}'`);
    }
  }
  const ok = await r.ctx.store.setFlags(r.target.address, ref.folder, ref.uidValidity, ref.uid, add, remove).catch(notFoundIfFolderMissing);
  if (!ok) throw graphErrors.itemNotFound();
  const m = await fetchOne(r, ref);
  const json = await resource(r, ref, m, undefined, preferences(r.req).bodyType);
  return { status: 200, json: { '@odata.context': `${r.origin}/v1.0/$metadata#users('${encodeURIComponent(r.user)}')/messages/$entity`, ...json } };
}

/** DELETE: Exchange's soft delete, a move to Deleted Items; from Deleted Items itself, gone for good. */
async function deleteMessage(r: Req, id: string): Promise<Result> {
  const ref = messageRef(r, id);
  const trash = WELL_KNOWN_FOLDERS.deleteditems?.path ?? 'Deleted Items';
  const done =
    ref.folder.toLowerCase() === trash.toLowerCase()
      ? await r.ctx.store.expunge(r.target.address, ref.folder, ref.uidValidity, ref.uid).catch(notFoundIfFolderMissing)
      : await r.ctx.store.move(r.target.address, ref.folder, ref.uidValidity, ref.uid, trash).catch(notFoundIfFolderMissing);
  if (!done) throw graphErrors.itemNotFound();
  return { status: 204 };
}

async function permanentDelete(r: Req, id: string): Promise<Result> {
  const ref = messageRef(r, id);
  const done = await r.ctx.store.expunge(r.target.address, ref.folder, ref.uidValidity, ref.uid).catch(notFoundIfFolderMissing);
  if (!done) throw graphErrors.itemNotFound();
  return { status: 204 };
}

async function moveMessage(r: Req, id: string): Promise<Result> {
  const ref = messageRef(r, id);
  const body = await readJson(r.req);
  const destination = prop(body, 'destinationId');
  if (typeof destination !== 'string') throw graphErrors.idMalformed();
  const dest = await resolveFolder(r, destination);
  const moved = await r.ctx.store.move(r.target.address, ref.folder, ref.uidValidity, ref.uid, dest.path).catch(notFoundIfFolderMissing);
  if (!moved) throw graphErrors.itemNotFound();
  const newRef: MessageRef = { mailbox: r.target.address.toLowerCase(), folder: dest.path, uidValidity: moved.uidValidity, uid: moved.uid };
  const m = await fetchOne(r, newRef);
  const json = await resource(r, newRef, m);
  return { status: 201, json: { '@odata.context': `${r.origin}/v1.0/$metadata#users('${encodeURIComponent(r.user)}')/messages/$entity`, ...json } };
}

function notFoundIfFolderMissing(err: unknown): never {
  if (err instanceof FolderMissing) throw graphErrors.itemNotFound();
  throw err;
}

async function folderResource(r: Req, path: string, all: Array<{ path: string; parentPath: string; name?: string }>): Promise<Record<string, unknown>> {
  const status = await r.ctx.store.status(r.target.address, path);
  if (!status) throw graphErrors.itemNotFound();
  const entry = all.find((f) => f.path === path);
  const parent = entry?.parentPath ? folderId({ mailbox: r.target.address, folder: entry.parentPath }) : folderId({ mailbox: r.target.address, folder: '\u0001msgfolderroot' });
  return {
    id: folderId({ mailbox: r.target.address, folder: path }),
    // The leaf name as Dovecot lists it (whatever the namespace separator is).
    displayName: wellKnownByPath(path)?.displayName ?? entry?.name ?? path,
    parentFolderId: parent,
    childFolderCount: all.filter((f) => f.parentPath === path).length,
    unreadItemCount: status.unseen,
    totalItemCount: status.messages,
    sizeInBytes: status.size,
    isHidden: false,
  };
}

async function getFolder(r: Req, segment: string): Promise<Result> {
  const folder = await resolveFolder(r, segment);
  const all = await r.ctx.store.listFolders(r.target.address);
  const json = await folderResource(r, folder.path, all);
  return { status: 200, json: { '@odata.context': `${r.origin}/v1.0/$metadata#users('${encodeURIComponent(r.user)}')/mailFolders/$entity`, ...json } };
}

async function listFolders(r: Req): Promise<Result> {
  const all = await r.ctx.store.listFolders(r.target.address);
  const value = [];
  for (const f of all.filter((x) => !x.parentPath)) value.push(await folderResource(r, f.path, all));
  return { status: 200, json: { '@odata.context': `${r.origin}/v1.0/$metadata#users('${encodeURIComponent(r.user)}')/mailFolders`, value } };
}

// --- delta --------------------------------------------------------------------------------------------

function deltaQuery(params: URLSearchParams): DeltaQuery {
  const query: DeltaQuery = {};
  query.select = parseSelect(params.get('$select') ?? undefined);
  const changeType = params.get('changeType');
  if (changeType !== null) {
    const c = changeType.toLowerCase();
    if (c !== 'created' && c !== 'updated' && c !== 'deleted') throw graphErrors.badQuery(`changeType must be created, updated or deleted, not '${changeType}'.`);
    query.changeType = c as ChangeType;
  }
  const filter = params.get('$filter');
  if (filter !== null) {
    const m = /^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$/i.exec(filter);
    const at = m ? Date.parse(m[2] as string) : NaN;
    if (!m || Number.isNaN(at)) throw graphErrors.badFilter();
    query.receivedAfter = { inclusive: (m[1] as string).toLowerCase() === 'ge', at };
  }
  const orderby = params.get('$orderby');
  if (orderby !== null && !/^\s*receivedDateTime\s+desc\s*$/i.test(orderby)) {
    throw graphErrors.badQuery("Only $orderby=receivedDateTime desc is supported on messages/delta.");
  }
  return query;
}

async function delta(r: Req, folderSegment: string): Promise<Result> {
  const { ctx, url } = r;
  const folder = await resolveFolder(r, folderSegment);
  const mailbox = r.target.address.toLowerCase();
  const prefs = preferences(r.req);
  const top = url.searchParams.get('$top');
  if (top !== null && !/^\d+$/.test(top)) throw graphErrors.badQuery(`Invalid $top value '${top}'.`);
  const pageSize = Math.max(1, Math.min(MAX_PAGE_SIZE, prefs.maxPageSize ?? (top !== null ? Number(top) : DEFAULT_PAGE_SIZE)));
  const skipToken = url.searchParams.get('$skiptoken');
  const deltaToken = url.searchParams.get('$deltatoken');

  let round: Round;
  let offset = 0;
  let missing: number[] = [];
  if (skipToken !== null) {
    const state = ctx.tokens.get(skipToken, { mailbox, folder: folder.path, kind: 'skip' });
    if (state.kind !== 'skip') throw graphErrors.internal();
    ({ round, offset, missing } = state);
  } else if (deltaToken !== null) {
    const state = ctx.tokens.get(deltaToken, { mailbox, folder: folder.path, kind: 'delta' });
    if (state.kind !== 'delta') throw graphErrors.internal();
    const changes = await ctx.store.changesSince(r.target.address, folder.path, BigInt(state.modseq));
    // The folder was recreated (new UIDVALIDITY): the sync state means nothing any more.
    if (changes.uidValidity !== state.uidValidity) throw graphErrors.syncStateNotFound(0, 0);
    const known = new Set(state.known);
    round = {
      mailbox,
      folder: folder.path,
      query: state.query,
      uidValidity: state.uidValidity,
      modseq: changes.modseq.toString(),
      baseKnown: state.known,
      dropped: changes.vanished.filter((uid) => known.has(uid)),
      entries: incrementalEntries(state.query, known, changes.changed, changes.vanished),
    };
  } else {
    const query = deltaQuery(url.searchParams);
    const snap = await ctx.store.snapshot(r.target.address, folder.path);
    round = {
      mailbox,
      folder: folder.path,
      query,
      uidValidity: snap.uidValidity,
      modseq: snap.modseq.toString(),
      baseKnown: [],
      dropped: [],
      entries: initialEntries(query, snap.messages),
    };
  }

  const page = round.entries.slice(offset, offset + pageSize);
  const wanted = page.filter((e) => e.kind === 'upsert').map((e) => e.uid);
  const stored = new Map((await ctx.store.fetch(r.target.address, folder.path, round.uidValidity, wanted)).map((m) => [m.uid, m]));
  const ref = { mailbox, folder: folder.path, uidValidity: round.uidValidity };
  const value: Record<string, unknown>[] = [];
  const nowMissing = [...missing];
  for (const e of page) {
    if (e.kind === 'removed') {
      value.push({ '@odata.type': '#microsoft.graph.message', id: messageId({ ...ref, uid: e.uid }), '@removed': { reason: 'deleted' } });
      continue;
    }
    const m = stored.get(e.uid);
    if (!m) {
      // Gone between listing and now: not reported; if the client knew it, the next round removes it.
      if (e.change === 'created') nowMissing.push(e.uid);
      continue;
    }
    value.push({ '@odata.type': '#microsoft.graph.message', ...(await resource(r, ref, m, round.query.select, prefs.bodyType)) });
  }

  const next = offset + page.length;
  const link = `${r.origin}/v1.0/${userPath(r)}/mailFolders('${encodeURIComponent(folderSegment)}')/messages/delta`;
  const body: Record<string, unknown> = { '@odata.context': `${r.origin}/v1.0/$metadata#Collection(message)` };
  if (next < round.entries.length) {
    body['@odata.nextLink'] = `${link}?$skiptoken=${ctx.tokens.issue({ kind: 'skip', round, offset: next, missing: nowMissing })}`;
  } else {
    const token = ctx.tokens.issue({
      kind: 'delta',
      mailbox,
      folder: folder.path,
      query: round.query,
      uidValidity: round.uidValidity,
      modseq: round.modseq,
      known: knownAfter(round, nowMissing),
    });
    body['@odata.deltaLink'] = `${link}?$deltatoken=${token}`;
  }
  body.value = value;
  return { status: 200, json: body };
}

// --- sendMail ----------------------------------------------------------------------------------------

/**
 * A non-delivery report as Exchange Online sends one to the sender (multipart/report, RFC 3464),
 * from the tenant's MicrosoftExchange… system address, with "Undeliverable:" and the original
 * headers [APPROX: layout and texts of Exchange's NDR are not copied].
 */
function nonDeliveryReport(o: { mailbox: string; domain: string; rejected: Array<{ recipient: string; response: string }>; original: Buffer; now: number }): Buffer {
  const headerEnd = o.original.indexOf('\r\n\r\n');
  const headers = o.original.subarray(0, headerEnd < 0 ? o.original.length : headerEnd).toString('latin1');
  const subject = /^Subject:[ \t]*(.*(?:\r\n[ \t].*)*)/im.exec(headers)?.[1]?.replace(/\r\n[ \t]/g, ' ') ?? '';
  const boundary = `ndr_${randomUUID()}`;
  const date = new Date(o.now).toUTCString().replace('GMT', '+0000');
  const status = (r: string) => /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(r)?.[1] ?? '5.0.0';
  const lines = [
    `From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@${o.domain}>`,
    `To: <${o.mailbox}>`,
    `Date: ${date}`,
    `Subject: Undeliverable: ${subject}`,
    `Message-ID: <${randomUUID()}@${o.domain}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    "Your message couldn't be delivered to these recipients:",
    ...o.rejected.map((r) => `  ${r.recipient}: ${r.response}`),
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns;${o.domain}`,
    '',
    ...o.rejected.flatMap((r) => [`Final-Recipient: rfc822;${r.recipient}`, 'Action: failed', `Status: ${status(r.response)}`, `Diagnostic-Code: smtp;${r.response}`, '']),
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    headers,
    '',
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

async function sendMail(r: Req): Promise<Result> {
  const { ctx, req, target } = r;
  const contentType = (header(req, 'content-type') ?? '').toLowerCase();
  const body = req.body instanceof Buffer ? req.body : Buffer.alloc(0);
  const now = ctx.now();
  const mailboxName = target.mailbox.displayName || ctx.directory.data.tenants.flatMap((t) => t.users).find((u) => u.upn.toLowerCase() === target.address.toLowerCase())?.displayName || '';

  let form: 'json' | 'mime';
  let from: string;
  let recipients: { to: string[]; cc: string[]; bcc: string[] };
  let delivered: Buffer;
  let sentCopy: Buffer;
  let save = true;
  if (contentType.startsWith('text/plain')) {
    // MIME form: the body is the base64 of the whole RFC 5322 message.
    form = 'mime';
    const raw = decodeBase64(body.toString('latin1'));
    if (!raw) throw graphErrors.mimeBase64();
    const env = await readMimeEnvelope(raw);
    recipients = env.recipients;
    for (const a of [...recipients.to, ...recipients.cc, ...recipients.bcc]) if (!isAddress(a)) throw graphErrors.badRecipient(a);
    if (recipients.to.length + recipients.cc.length + recipients.bcc.length === 0) throw graphErrors.noRecipients();
    // Exchange stamps the sending mailbox as From when the MIME has none.
    const withFrom = env.from ? raw : Buffer.concat([Buffer.from(`From: ${target.address}\r\n`, 'latin1'), raw]);
    from = env.from ?? target.address;
    sentCopy = withFrom;
    delivered = recipients.bcc.length ? stripBcc(withFrom) : withFrom;
  } else {
    form = 'json';
    const json = await readJson(req);
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw graphErrors.badJson();
    const saveProp = prop(json, 'saveToSentItems');
    if (saveProp !== undefined && typeof saveProp !== 'boolean') throw graphErrors.badJson();
    save = saveProp !== false;
    const composed = await composeMessage(prop(json, 'message'), { name: mailboxName, address: target.address }, now);
    ({ from, recipients, delivered, sentCopy } = composed);
  }
  if (!maySendAs(r.principal, target, from)) throw graphErrors.sendAsDenied();

  const all = [...new Map([...recipients.to, ...recipients.cc, ...recipients.bcc].map((a) => [a.toLowerCase(), a])).values()];
  const local = all.filter((a) => ctx.directory.mailbox(a));
  const outbound = all.filter((a) => !ctx.directory.mailbox(a));
  let accepted: string[] = [];
  let rejected: Array<{ recipient: string; response: string }> = [];
  if (local.length) {
    try {
      ({ accepted, rejected } = await ctx.backend.deliver({ from, to: local }, delivered));
    } catch (err) {
      ctx.log.error({ err }, 'graph sandbox: LMTP delivery failed');
      throw graphErrors.unavailable(5);
    }
  }
  if (rejected.length) {
    // Exchange accepts sendMail (202) and reports a recipient it cannot deliver to with a
    // non-delivery report in the sending mailbox; mail is never dropped without a word.
    ctx.log.warn({ mailbox: target.address, rejected }, 'graph sandbox: sendMail recipients refused, NDR sent to the sender');
    const tenant = ctx.directory.mailbox(target.address)?.tenant;
    const ndr = nonDeliveryReport({ mailbox: target.address, domain: tenant?.domains.at(-1) ?? 'sandbox.test', rejected, original: delivered, now });
    await ctx.backend.deliver({ from: '', to: [target.address] }, ndr).catch((err: unknown) => ctx.log.error({ err }, 'graph sandbox: NDR delivery failed'));
  }
  if (outbound.length) ctx.stats.outbound.push({ from, to: outbound, raw: delivered, at: now });
  if (save) await ctx.store.append(target.address, WELL_KNOWN_FOLDERS.sentitems?.path ?? 'Sent Items', sentCopy, ['\\Seen'], new Date(now));
  ctx.stats.sent.push({
    mailbox: target.address,
    form,
    from,
    ...recipients,
    delivered: accepted,
    rejected,
    outbound,
    savedToSentItems: save,
    at: now,
  });
  return { status: 202 };
}
