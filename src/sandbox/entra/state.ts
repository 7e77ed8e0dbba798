/**
 * The emulator's memory between requests: pending sign-ins, authorization codes, device codes
 * and refresh-token grants. Nothing here is persisted; a restarted sandbox forgets its grants, as
 * a real client would see after its refresh token was revoked. Expiry is decided when an entry is
 * used (against the sandbox clock), so no timers run.
 */
import { randomBytes, randomUUID } from 'node:crypto';

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
  token: string;
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

export class EntraState {
  readonly signIns = new Map<string, PendingSignIn>();
  readonly codes = new Map<string, AuthCode>();
  readonly deviceCodes = new Map<string, DeviceCodeEntry>();
  readonly refreshTokens = new Map<string, RefreshGrant>();
  private prunedAt = 0;

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
    for (const [k, v] of this.refreshTokens) if (now - v.lastUsedAt > 2 * REFRESH_INACTIVITY_MS) this.refreshTokens.delete(k);
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
