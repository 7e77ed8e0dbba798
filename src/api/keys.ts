/**
 * API keys: who may call the admin API, and with which scopes. Keys arrive in clear from the secret
 * box (api.keys.<name>.key, notify.api.keys.<name>), are registered with the log's redaction at once
 * and kept only as SHA-256 digests; a request's bearer key is compared with every digest in
 * constant time, without stopping at a match, so timing tells nothing about which key matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { registerSecret } from '../log/redact.ts';
import type { ApiScope } from './config.ts';
import { expandScopes, type Caller } from './route.ts';

export interface ApiKeyEntry {
  name: string;
  key: string;
  scopes: readonly ApiScope[];
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class ApiKeys {
  private entries: Array<{ digest: Buffer; caller: Caller }> = [];

  constructor(keys: readonly ApiKeyEntry[]) {
    this.replace(keys);
  }

  /** From now on these keys, and only these, are accepted (config apply changed api.keys). */
  replace(keys: readonly ApiKeyEntry[]): void {
    this.entries = keys
      .filter((k) => k.key.length > 0)
      .map((k) => {
        registerSecret(k.key, `api key ${k.name}`);
        return { digest: digest(k.key), caller: { key: k.name, scopes: expandScopes(k.scopes) } };
      });
  }

  get size(): number {
    return this.entries.length;
  }

  /** The caller an `Authorization: Bearer <key>` header names, or undefined. */
  authenticate(header: string | undefined): Caller | undefined {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!m) return undefined;
    const given = digest(m[1]!);
    let found: Caller | undefined;
    for (const e of this.entries) if (timingSafeEqual(given, e.digest) && !found) found = e.caller;
    return found;
  }
}

/**
 * The keys of a configuration: api.keys with their scopes, and notify.api.keys with the scope
 * `subscriptions` (named `notify.<name>` in the audit log, so the two sets never share a name).
 */
export function keysFromConfig(
  config: { api?: { keys: Record<string, { key: string; scopes: ApiScope[] }> } | undefined; notify?: { api: { keys: Record<string, string> } } | undefined },
  reveal: (stored: string, field: string) => string,
): ApiKeyEntry[] {
  const out: ApiKeyEntry[] = [];
  for (const [name, k] of Object.entries(config.api?.keys ?? {})) out.push({ name, key: reveal(k.key, `api.keys.${name}.key`), scopes: k.scopes });
  for (const [name, stored] of Object.entries(config.notify?.api.keys ?? {})) {
    out.push({ name: `notify.${name}`, key: reveal(stored, `notify.api.keys.${name}`), scopes: ['subscriptions'] });
  }
  return out;
}
