/**
 * The emulator's memory between requests: pending sign-ins, authorization codes, device codes
 * and refresh-token grants. Expiry is decided when an entry is used (against the sandbox clock), so
 * no timers run.
 *
 * Refresh-token grants (the delegated sign-ins) can be kept in a file, so a restarted sandbox still
 * honours them as Entra does: a mailbridge signed in once keeps working across sandbox restarts.
 * The file holds SHA-256 hashes of the tokens, not the tokens, and is written (atomically, 0600) on
 * every change. Sign-in pages, codes and device codes live minutes and stay in memory.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export type ResponseMode = 'query' | 'fragment' | 'form_post';

/** An /authorize request waiting for the user to sign in on the page. */
export interface PendingSignIn {
  id: string;
  tenantId: string;
  appId: string;
  redirectUri: string;
  scope: string;
  state?: string;
  nonce?: string;
  codeChallenge?: string;
  codeChallengeMethod?: 'S256' | 'plain';
  responseMode: ResponseMode;
  clientInfo: boolean;
  loginHint?: string;
  createdAt: number;
}

export interface AuthCode {
  code: string;
  tenantId: string;
  appId: string;
  redirectUri: string;
  scope: string;
  userOid: string;
  nonce?: string;
  codeChallenge?: string;
  codeChallengeMethod?: 'S256' | 'plain';
  issuedAt: number;
  redeemed: boolean;
}

export interface DeviceCodeEntry {
  deviceCode: string;
  userCode: string;
  tenantId: string;
  appId: string;
  scope: string;
  issuedAt: number;
  expiresAt: number;
  status: 'pending' | 'approved' | 'declined' | 'redeemed';
  userOid?: string;
  authTime?: number;
}

export interface RefreshGrant {
  tenantId: string;
  appId: string;
  userOid: string;
  /** Scopes of the original sign-in (space-separated). */
  scope: string;
  /** When the user signed in; sessions revoked after it invalidate the grant (AADSTS50173). */
  authTime: number;
  /** When this refresh token was issued (AADSTS700082 quotes it). */
  issuedAt: number;
  lastUsedAt: number;
}

export const AUTH_CODE_LIFETIME_MS = 10 * 60_000;
export const SIGN_IN_PAGE_LIFETIME_MS = 60 * 60_000;
export const DEVICE_CODE_LIFETIME_S = 900;
export const DEVICE_CODE_INTERVAL_S = 5;
/** Refresh tokens expire after 90 days without use (AADSTS700082 "inactive for 90.00:00:00"). */
export const REFRESH_INACTIVITY_MS = 90 * 86_400_000;

// User codes are read off one screen and typed on another: no 0/O, 1/I.
const USER_CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

const DAY_MS = 86_400_000;

/** Refresh-token grants by token hash, written to `file` (if given) on every change. */
export class RefreshGrants {
  private readonly byHash = new Map<string, RefreshGrant>();
  private readonly file: string | undefined;

  constructor(file?: string) {
    this.file = file;
    if (file && existsSync(file)) {
      let data: { grants?: Record<string, RefreshGrant> } = {};
      try {
        data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
      } catch {
        // A damaged file (it is written atomically, so only by hand) forgets the sign-ins, as a
        // revoked refresh token would: clients sign in again; the sandbox still starts.
      }
      for (const [hash, grant] of Object.entries(data.grants ?? {})) this.byHash.set(hash, grant);
    }
  }

  get(token: string): RefreshGrant | undefined {
    return this.byHash.get(hashToken(token));
  }

  set(token: string, grant: RefreshGrant): void {
    this.byHash.set(hashToken(token), grant);
    this.save();
  }

  /** Using a refresh token counts as activity (the 90-day inactivity limit restarts). */
  used(grant: RefreshGrant, now: number): void {
    grant.lastUsedAt = now;
    this.save();
  }

  get size(): number {
    return this.byHash.size;
  }

  /** Forget grants `stale` says are stale. */
  prune(stale: (g: RefreshGrant) => boolean): void {
    let changed = false;
    for (const [k, v] of this.byHash) {
      if (stale(v)) {
        this.byHash.delete(k);
        changed = true;
      }
    }
    if (changed) this.save();
  }

  private save(): void {
    if (!this.file) return;
    const tmp = `${this.file}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ version: 1, grants: Object.fromEntries(this.byHash) }), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class EntraState {
  readonly signIns = new Map<string, PendingSignIn>();
  readonly codes = new Map<string, AuthCode>();
  readonly deviceCodes = new Map<string, DeviceCodeEntry>();
  readonly refreshTokens: RefreshGrants;
  private prunedAt = 0;

  /** `grantsFile`: where refresh-token grants are kept across restarts (none: memory only). */
  constructor(grantsFile?: string) {
    this.refreshTokens = new RefreshGrants(grantsFile);
  }

  /**
   * Forget entries long past use, so a sandbox that runs for weeks does not grow without end.
   * Entries are kept well beyond their expiry so that a late request still gets the "expired"
   * error (70008, 70019, 700082) rather than "unknown".
   */
  prune(now: number): void {
    if (now - this.prunedAt < 60_000) return;
    this.prunedAt = now;
    for (const [k, v] of this.signIns) if (now - v.createdAt > SIGN_IN_PAGE_LIFETIME_MS + DAY_MS) this.signIns.delete(k);
    for (const [k, v] of this.codes) if (now - v.issuedAt > AUTH_CODE_LIFETIME_MS + DAY_MS) this.codes.delete(k);
    for (const [k, v] of this.deviceCodes) if (now > v.expiresAt + DAY_MS) this.deviceCodes.delete(k);
    this.refreshTokens.prune((v) => now - v.lastUsedAt > 2 * REFRESH_INACTIVITY_MS);
  }

  newSignInId(): string {
    return randomUUID();
  }

  /** Opaque, long and URL-safe, like Entra's "1.A…" codes. */
  newCode(): string {
    return `1.A${randomBytes(180).toString('base64url')}`;
  }

  newRefreshToken(): string {
    return `1.A${randomBytes(300).toString('base64url')}`;
  }

  newDeviceCode(): string {
    return `DAQABIQEAAAD${randomBytes(150).toString('base64url')}`;
  }

  newUserCode(): string {
    for (;;) {
      const bytes = randomBytes(9);
      const code = [...bytes].map((b) => USER_CODE_ALPHABET[b % USER_CODE_ALPHABET.length]).join('');
      if (!this.deviceByUserCode(code)) return code;
    }
  }

  deviceByUserCode(userCode: string): DeviceCodeEntry | undefined {
    const key = userCode.trim().toUpperCase();
    for (const entry of this.deviceCodes.values()) if (entry.userCode === key) return entry;
    return undefined;
  }
}
