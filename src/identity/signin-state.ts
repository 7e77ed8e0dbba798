/**
 * Pending delegated sign-ins, kept in the store (namespace `identity.signin`, key = the OAuth
 * `state`) so that the process that printed the link (the CLI) and the process that receives the
 * redirect (the gateway) can be different ones. A record holds the PKCE verifier, so it is sealed;
 * it lives 15 minutes (Entra's authorization codes live about 10) and is used once.
 */
import type { SecretBox } from '../config/secret-box.ts';
import type { ErrorParams, MbCode } from '../errors/index.ts';
import type { KeyValue } from '../store/index.ts';

export const SIGNIN_NAMESPACE = 'identity.signin';
/** Console sign-ins of people (OpenID Connect): never redeemed by /oauth/callback, and the other way round. */
export const CONSOLE_SIGNIN_NAMESPACE = 'identity.console-signin';
export const SIGNIN_TTL_MINUTES = 15;

export type SignInRecord =
  | {
      status: 'pending';
      connection: string;
      verifier: string;
      redirectUri: string;
      scopes: string[];
      createdAt: number;
      /** OpenID Connect nonce the id token must carry (console sign-ins). */
      nonce?: string;
    }
  | { status: 'done'; connection: string; account: string; createdAt: number; warnings: Array<{ code: MbCode; params: ErrorParams }> }
  | { status: 'failed'; connection: string; createdAt: number; code: MbCode; params: ErrorParams; details: Record<string, string> };

export class SignInStore {
  private readonly kv: KeyValue;
  private readonly box: SecretBox;
  private readonly namespace: string;

  constructor(kv: KeyValue, box: SecretBox, namespace = SIGNIN_NAMESPACE) {
    this.kv = kv;
    this.box = box;
    this.namespace = namespace;
  }

  async put(state: string, record: SignInRecord): Promise<void> {
    await this.kv.set(this.namespace, state, this.box.seal(JSON.stringify(record)));
  }

  async get(state: string): Promise<SignInRecord | undefined> {
    const sealed = await this.kv.get(this.namespace, state);
    if (sealed === undefined) return undefined;
    // A key problem (another key file than the process that sealed it) surfaces as the box's own
    // MbError, which names the key file; it must not look like an unknown sign-in.
    const clear = this.box.reveal(sealed);
    try {
      return JSON.parse(clear) as SignInRecord;
    } catch {
      return undefined;
    }
  }

  async delete(state: string): Promise<void> {
    await this.kv.delete(this.namespace, state);
  }

  /** Drop records older than the TTL (called when a new sign-in starts). */
  async sweep(now: number): Promise<void> {
    for (const row of await this.kv.list(this.namespace)) {
      const rec = await this.get(row.key).catch(() => undefined);
      if (!rec || now - rec.createdAt > 2 * SIGNIN_TTL_MINUTES * 60_000) await this.delete(row.key);
    }
  }
}
