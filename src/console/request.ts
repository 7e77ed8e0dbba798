/**
 * What every console page needs of its request: the language (the mb_lang cookie the switch link
 * sets, else Accept-Language) and the admin API called on the caller's behalf. Pages read their
 * data through the API itself (fastify.inject with the browser's Authorization header and
 * cookies), so the console sees exactly what the caller's key or session may see, with the same
 * MB codes, and no capability query exists twice.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { langFromHeader, type Lang } from '../i18n/index.ts';

export const LANG_COOKIE = 'mb_lang';

export function cookie(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

export function langOf(req: FastifyRequest): Lang {
  const c = cookie(req, LANG_COOKIE);
  return c === 'de' || c === 'en' ? c : langFromHeader(req.headers['accept-language']);
}

export interface ApiError {
  code: string;
  title: string;
  cause: string;
  fix: string;
}

export type ApiAnswer<T> = { ok: true; status: number; body: T } | { ok: false; status: number; error: ApiError };

/** The console's view of one request: its language and the API as this caller. */
export interface Ctx {
  lang: Lang;
  /** Path and query of the page (for the language switch's way back). */
  path: string;
  api<T>(url: string): Promise<ApiAnswer<T>>;
  /** The signed-in person, when the caller came with a session (read once per page). */
  person?: { user: string; roles: string[] } | undefined;
}

export function ctxOf(http: FastifyInstance, req: FastifyRequest): Ctx {
  const lang = langOf(req);
  const headers: Record<string, string> = { 'accept-language': lang };
  if (req.headers.authorization) headers.authorization = req.headers.authorization;
  if (req.headers.cookie) headers.cookie = req.headers.cookie;
  return {
    lang,
    path: req.url,
    async api<T>(url: string): Promise<ApiAnswer<T>> {
      const res = await http.inject({ method: 'GET', url, headers });
      const body = res.body ? (JSON.parse(res.body) as unknown) : undefined;
      if (res.statusCode < 400) return { ok: true, status: res.statusCode, body: body as T };
      const error = (body as { error?: ApiError } | undefined)?.error ?? { code: 'MB_INTERNAL', title: `HTTP ${res.statusCode}`, cause: '', fix: '' };
      return { ok: false, status: res.statusCode, error };
    },
  };
}

/** Thrown by a page when the API refused the caller as unknown: the console answers with its sign-in page. */
export class SignInNeeded extends Error {
  readonly error: ApiError;
  constructor(error: ApiError) {
    super(error.code);
    this.error = error;
  }
}

/** The body of an answer, a sign-in page for 401, or undefined with the error for the page to show. */
export function need<T>(a: ApiAnswer<T>): { body?: T; error?: ApiError; notConfigured?: boolean } {
  if (a.ok) return { body: a.body };
  if (a.status === 401) throw new SignInNeeded(a.error);
  return { error: a.error, notConfigured: a.error.code === 'MB_API_NOT_CONFIGURED' };
}
