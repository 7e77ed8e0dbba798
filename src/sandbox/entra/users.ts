/**
 * User sign-in checks shared by the authorize page, the device-login page and the test helpers:
 * the account must exist in the app's tenant (50034; 50020 when it lives in another sandbox
 * tenant), be enabled (50057), be assigned to the app when it requires assignment (50105) and,
 * when a password is checked, match (50126).
 */
import { timingSafeEqual } from 'node:crypto';
import type { SandboxDirectory } from '../directory.ts';
import type { SandboxApp, SandboxTenant, SandboxUser } from '../model.ts';
import { AadstsError } from './aadsts.ts';
import { v1Issuer } from './tokens.ts';

export function findUser(tenant: SandboxTenant, upnOrOid: string): SandboxUser | undefined {
  const key = upnOrOid.toLowerCase();
  return tenant.users.find((u) => u.upn.toLowerCase() === key || u.objectId.toLowerCase() === key);
}

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** password undefined: skip the password check (approveDeviceCode, a test acting as the user). */
export function checkUserSignIn(directory: SandboxDirectory, tenant: SandboxTenant, app: SandboxApp, upn: string, password: string | undefined): SandboxUser {
  const user = findUser(tenant, upn);
  if (!user) {
    const home = directory.data.tenants.find((t) => t !== tenant && findUser(t, upn));
    if (home) {
      throw new AadstsError(50020, { upn, idp: v1Issuer(home), tenantName: tenant.name, appId: app.appId, appName: app.displayName });
    }
    throw new AadstsError(50034, { upn, tenantName: tenant.name });
  }
  if (password !== undefined && !sameSecret(password, user.password)) throw new AadstsError(50126);
  if (user.disabled) throw new AadstsError(50057);
  checkAssignment(app, user);
  return user;
}

/** "Assignment required?" on the enterprise application: Entra refuses sign-in and refresh of unassigned users. */
export function checkAssignment(app: SandboxApp, user: SandboxUser): void {
  if (!app.assignmentRequired) return;
  const ids = new Set((app.assignedUsers ?? []).map((u) => u.toLowerCase()));
  if (ids.has(user.upn.toLowerCase()) || ids.has(user.objectId.toLowerCase())) return;
  throw new AadstsError(50105, { appId: app.appId, appName: app.displayName, upn: user.upn });
}
