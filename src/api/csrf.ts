/**
 * Who is calling, and whether a change really comes from the console: an API key (Authorization:
 * Bearer, exempt from CSRF checks, since a browser never adds it by itself) or a console session
 * (cookie mb_session). A cookie is sent by the browser whatever page asks, so every cookie-
 * authenticated request other than GET/HEAD needs
 * - the header x-csrf-token equal to the session's token (constant-time compare; a page of another
 *   site cannot read it, and cannot set the header on a cross-site form post), and
 * - an Origin (or, without it, a Referer) of this server, when the browser sends one.
 * SameSite=Strict on the cookie is the third line: it is not sent on cross-site requests at all.
 */
import type { FastifyRequest } from 'fastify';
import { MbError } from '../errors/index.ts';
import type { Text } from '../i18n/index.ts';
import type { ApiKeys } from './keys.ts';
import type { Caller } from './route.ts';
import { cookieValue, sameToken, SESSION_COOKIE, sessionCaller, type Session, type Sessions } from './session.ts';

export interface Authenticated {
  caller: Caller;
  /** Set when the caller came from a session cookie. */
  session?: { id: string; data: Session };
  /** MB_API_CSRF: a cookie-authenticated change without proof that the console sent it. */
  refused?: MbError;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The origins this server answers under: the request's own scheme and Host, and server.publicUrl's. */
export function ownOrigins(req: FastifyRequest, publicUrl: string | undefined): Set<string> {
  const out = new Set<string>();
  if (req.headers.host) out.add(`${req.protocol}://${req.headers.host}`.toLowerCase());
  if (publicUrl) out.add(new URL(publicUrl).origin.toLowerCase());
  return out;
}

/** Why the request's Origin/Referer is foreign, or undefined when it is this server's or absent. */
export function foreignOrigin(req: FastifyRequest, publicUrl: string | undefined): Text | undefined {
  const origin = req.headers.origin;
  const referer = req.headers.referer;
  let from: string | undefined;
  if (origin !== undefined) from = origin;
  else if (referer !== undefined) {
    try {
      from = new URL(referer).origin;
    } catch {
      return { en: 'its Referer is not a URL', de: 'ihr Referer ist keine URL' };
    }
  }
  if (from === undefined) return undefined;
  // "null" is what sandboxed frames and some cross-site redirects send: never this server.
  if (!ownOrigins(req, publicUrl).has(from.toLowerCase())) return { en: `it came from a page of ${from}`, de: `sie kam von einer Seite von ${from}` };
  return undefined;
}

export class Gate {
  private readonly keys: ApiKeys;
  private readonly sessions: Sessions;
  private readonly publicUrl: string | undefined;

  constructor(keys: ApiKeys, sessions: Sessions, publicUrl: string | undefined) {
    this.keys = keys;
    this.sessions = sessions;
    this.publicUrl = publicUrl;
  }

  /**
   * The caller, or undefined (401). An Authorization header decides alone: a wrong key is not
   * rescued by a cookie. A cookie-authenticated change without proof comes back `refused`.
   */
  async authenticate(req: FastifyRequest): Promise<Authenticated | undefined> {
    if (req.headers.authorization !== undefined) {
      const caller = this.keys.authenticate(req.headers.authorization);
      return caller ? { caller } : undefined;
    }
    const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
    const data = await this.sessions.get(id);
    if (!id || !data) return undefined;
    const refused = SAFE.has(req.method) ? undefined : this.checkChange(req, data);
    return { caller: sessionCaller(data), session: { id, data }, ...(refused ? { refused } : {}) };
  }

  private checkChange(req: FastifyRequest, session: Session): MbError | undefined {
    const path = req.url.split('?')[0]!;
    const header = req.headers['x-csrf-token'];
    const given = Array.isArray(header) ? header[0] : header;
    if (given === undefined) return new MbError('MB_API_CSRF', { path, problem: { en: 'without the header x-csrf-token', de: 'ohne den Header x-csrf-token' } });
    if (!sameToken(given, session.csrf)) return new MbError('MB_API_CSRF', { path, problem: { en: 'its x-csrf-token is not the one of this session', de: 'ihr x-csrf-token ist nicht das dieser Sitzung' } });
    const foreign = foreignOrigin(req, this.publicUrl);
    return foreign ? new MbError('MB_API_CSRF', { path, problem: foreign }) : undefined;
  }
}
