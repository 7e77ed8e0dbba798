/**
 * MSAL's token cache (accounts, refresh tokens, access tokens of delegated sign-ins) kept in the
 * store, sealed with the SecretBox: one kv row per connection in namespace `identity.msal`.
 *
 * MSAL calls beforeCacheAccess before every cache read and afterCacheAccess after every write; a
 * rotated refresh token is written back at once, so a restart (or the CLI and the gateway, which
 * share the store) continues with the newest one. The row is only unsealed when it changed since
 * this process last saw it (the clear text of the last row is kept in memory, where MSAL holds the
 * same tokens anyway). The blob itself is never printed, so it is opened without registering it
 * with the log scrubber; its refresh tokens are registered one by one, each under its own slot, so
 * a rotated token replaces its predecessor instead of piling up in a long-running gateway.
 *
 * Limits: two processes refreshing the same account at the same instant both succeed at Entra ID,
 * and the later write wins; Entra keeps earlier refresh tokens valid, so nothing breaks.
 */
import type { ICachePlugin, TokenCacheContext } from '@azure/msal-node';
import type { SecretBox } from '../config/secret-box.ts';
import type { KeyValue } from '../store/index.ts';
import { registerSecret } from '../log/redact.ts';

export const CACHE_NAMESPACE = 'identity.msal';

/** The cache plugin of one connection: its row is `key` in `kv`, sealed with `box`. */
export function sealedCachePlugin(kv: KeyValue, box: SecretBox, key: string): ICachePlugin {
  let lastSealed: string | undefined;
  let lastClear: string | undefined;
  return {
    async beforeCacheAccess(ctx: TokenCacheContext): Promise<void> {
      const sealed = await kv.get(CACHE_NAMESPACE, key);
      if (sealed === undefined) return;
      // Always hand MSAL the stored state (its overwriteCache() clears memory first); unseal only
      // when the row changed.
      if (sealed !== lastSealed) {
        lastClear = box.open(sealed);
        lastSealed = sealed;
        registerCacheSecrets(key, lastClear);
      }
      ctx.tokenCache.deserialize(lastClear!);
    },

    async afterCacheAccess(ctx: TokenCacheContext): Promise<void> {
      if (!ctx.cacheHasChanged) return;
      const clear = ctx.tokenCache.serialize();
      const sealed = box.seal(clear);
      await kv.set(CACHE_NAMESPACE, key, sealed);
      lastSealed = sealed;
      lastClear = clear;
      registerCacheSecrets(key, clear);
    },
  };
}

/** MSAL's serialized cache: { RefreshToken: { <key>: { secret, … } }, AccessToken: …, IdToken: … }. */
function registerCacheSecrets(connection: string, clear: string): void {
  let parsed: Record<string, Record<string, { secret?: string }> | undefined>;
  try {
    parsed = JSON.parse(clear) as typeof parsed;
  } catch {
    return;
  }
  for (const kind of ['RefreshToken', 'AccessToken', 'IdToken'] as const) {
    for (const [entry, value] of Object.entries(parsed[kind] ?? {})) {
      registerSecret(value?.secret, `${connection}:${kind}:${entry}`);
    }
  }
}
