/**
 * Console sessions of people (local admin users, Entra ID sign-ins): a random session ID in the
 * cookie `mb_session` (HttpOnly, SameSite=Strict, Path=/, Secure when served over TLS), the session
 * itself in the store's key-value table, so it survives a restart and is shared by every node on
 * one PostgreSQL database.
 *
 * The store keeps the session under the SHA-256 digest of its ID, never the ID itself: whoever
 * reads the database (a backup, a replica) gets no cookie that signs in. Each session carries its
 * own CSRF token (what `GET /api/v1/session` hands to the console for `x-csrf-token`).
 *
 * Expiry: idle (no request for `idleMinutes`) and absolute (`maxHours` after sign-in, however
 * active). The last-seen time is written at most once a minute, so a busy console costs no write
 * per request. Expired sessions are removed when met and by `sweep` (at each new sign-in).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KeyValue } from '../store/index.ts';
import { expandScopes, type Caller } from './route.ts';
import { ROLE_SCOPES, type Role } from './config.ts';

export const SESSION_NAMESPACE = 'api.session';
export const SESSION_COOKIE = 'mb_session';
/** Last-seen writes are skipped while the stored value is younger than this. */
const TOUCH_EVERY_MS = 60_000;

export interface Session {
  /** The person's name: a local user's name or the Entra ID account (UPN). */
  user: string;
  role: Role;
  via: 'local' | 'entra';
  csrf: string;
  created: number;
  seen: number;
}

export interface SessionOptions {
  idleMinutes: number;
  maxHours: number;
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

/** The caller a session stands for: `user:<name>` with the scopes of its role. */
export function sessionCaller(s: Pick<Session, 'user' | 'role'>): Caller {
  return { key: `user:${s.user}`, scopes: expandScopes(ROLE_SCOPES[s.role]) };
}

/** Constant-time comparison of a CSRF token with the session's. */
export function sameToken(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export class Sessions {
  private readonly kv: KeyValue;
  private readonly idleMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  constructor(kv: KeyValue, options: SessionOptions, now: () => number = Date.now) {
    this.kv = kv;
    this.idleMs = options.idleMinutes * 60_000;
    this.maxMs = options.maxHours * 3_600_000;
    this.now = now;
  }

  /** Seconds until a new session ends at the latest (the cookie's Max-Age). */
  get maxAgeSeconds(): number {
    return Math.floor(this.maxMs / 1000);
  }

  async create(user: string, role: Role, via: Session['via']): Promise<{ id: string; session: Session }> {
    await this.sweep();
    const id = randomBytes(32).toString('base64url');
    const now = this.now();
    const session: Session = { user, role, via, csrf: randomBytes(32).toString('base64url'), created: now, seen: now };
    await this.kv.set(SESSION_NAMESPACE, digest(id), JSON.stringify(session));
    return { id, session };
  }

  /** The live session of a cookie's ID (its idle time restarted), or undefined. */
  async get(id: string | undefined): Promise<Session | undefined> {
    if (!id || id.length > 200) return undefined;
    const key = digest(id);
    const raw = await this.kv.get(SESSION_NAMESPACE, key);
    if (raw === undefined) return undefined;
    const s = JSON.parse(raw) as Session;
    const now = this.now();
    if (this.expired(s, now)) {
      await this.kv.delete(SESSION_NAMESPACE, key);
      return undefined;
    }
    if (now - s.seen >= TOUCH_EVERY_MS) {
      s.seen = now;
      await this.kv.set(SESSION_NAMESPACE, key, JSON.stringify(s), { relaxed: true });
    }
    return s;
  }

  async delete(id: string | undefined): Promise<boolean> {
    if (!id) return false;
    return this.kv.delete(SESSION_NAMESPACE, digest(id));
  }

  /** Ends every session of a person (e.g. after a password change); returns how many. */
  async deleteUser(user: string): Promise<number> {
    let n = 0;
    for (const row of await this.kv.list(SESSION_NAMESPACE)) {
      if ((JSON.parse(row.value) as Session).user === user && (await this.kv.delete(SESSION_NAMESPACE, row.key))) n++;
    }
    return n;
  }

  /** Removes expired sessions. */
  async sweep(): Promise<number> {
    const now = this.now();
    let n = 0;
    for (const row of await this.kv.list(SESSION_NAMESPACE)) {
      if (this.expired(JSON.parse(row.value) as Session, now) && (await this.kv.delete(SESSION_NAMESPACE, row.key))) n++;
    }
    return n;
  }

  private expired(s: Session, now: number): boolean {
    return now - s.seen >= this.idleMs || now - s.created >= this.maxMs;
  }
}

/** The value of one cookie from a Cookie header (the first of that name). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const v = part.slice(eq + 1).trim();
    try {
      return decodeURIComponent(v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** A Set-Cookie value; `maxAge` 0 deletes the cookie. */
export function setCookie(name: string, value: string, o: { secure: boolean; maxAge?: number; sameSite?: 'Strict' | 'Lax'; path?: string }): string {
  const parts = [`${name}=${encodeURIComponent(value)}`, `Path=${o.path ?? '/'}`, 'HttpOnly', `SameSite=${o.sameSite ?? 'Strict'}`];
  if (o.maxAge !== undefined) parts.push(`Max-Age=${o.maxAge}`);
  if (o.secure) parts.push('Secure');
  return parts.join('; ');
}
