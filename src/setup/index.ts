/**
 * `mailbridge setup`: makes the app registration of one connection match what the configuration
 * needs (requirements.ts), through Microsoft Graph with an admin's delegated token, and writes the
 * Exchange PowerShell script for what Graph cannot do (exchange-script.ts).
 *
 * One code path for three modes, so what is printed is what would be done:
 *  - apply: read, then write what is missing — create the application (when clientId is `new`;
 *    an app of the same name from an interrupted run is taken over), its
 *    service principal (the enterprise application), requiredResourceAccess, redirect URIs and the
 *    public-client switch, admin consent (app role assignments on the resource service principals;
 *    tenant-wide delegated grants for auth-code/device-code connections), and a credential: a
 *    certificate by default (RSA key made here and kept in a key file beside mailbridge.yaml,
 *    encrypted with a password stored sealed in mailbridge.yaml; only the public certificate is
 *    uploaded) or a client secret (stored sealed, with its expiry date). A second run finds
 *    everything in place and writes nothing.
 *  - dry-run: the same reads, and every write it would make is reported, not sent.
 *  - check: the same reads; every missing piece is reported, nothing is written, no script.
 *
 * Strategies: reads before writes, and each write only when the read shows it missing (that is
 * what makes it idempotent); the IDs of permissions come from the resource service principals of
 * the tenant itself (falling back to the known IDs); the new client ID is written to
 * mailbridge.yaml right after the app exists, so an interrupted run continues with the same app.
 *
 * Limits: an app that already has certificates none of which is configured here cannot get ours by
 * PATCH without losing them (Graph's addKey needs a proof signed by one of them): that is reported
 * with the portal path instead. Propagation: Entra can take up to 30 minutes before new roles show
 * in tokens; setup says so and does not wait.
 */
import { createPrivateKey, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../app/schema.ts';
import type { ConnectionConfig } from '../identity/config.ts';
import type { SecretBox } from '../config/secret-box.ts';
import { MbError } from '../errors/index.ts';
import { cloudFor, type Resource } from '../identity/clouds.ts';
import { loadCertificate, revealSecret } from '../identity/credentials.ts';
import type { Lang, Text } from '../i18n/index.ts';
import { registerSecret } from '../log/redact.ts';
import { selfSignedCertificate } from '../util/certificates.ts';
import { exchangeScript } from './exchange-script.ts';
import { RESOURCE_APP_IDS, RESOURCE_NAMES } from './permissions.ts';
import { appRoleGrants, findApplication, findServicePrincipal, odataFilter, type DirectoryGet, type GraphApp } from './directory.ts';
import { CONSOLE_APP_ROLES, connectionRequirements, usesText, type ConnectionRequirements, type PermissionNeed } from './requirements.ts';

export type SetupMode = 'apply' | 'dry-run' | 'check';

export interface DirectoryReply {
  status: number;
  json?: Record<string, unknown>;
  text: string;
  requestId: string;
}

/** Sends one Graph request (path below the base URL, e.g. /applications). */
export type DirectorySend = (method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown) => Promise<DirectoryReply>;

export interface SetupOptions {
  config: Config;
  configPath: string;
  connection: string;
  mode: SetupMode;
  /** Credential to create when the connection has none that works: certificate (default) or secret. */
  credential?: 'certificate' | 'secret';
  /** Lifetime of a new secret or certificate (default 12; Entra allows secrets at most 24). */
  validMonths?: number;
  /** Display name of a new app (default "mailbridge <connection>"). */
  displayName?: string;
  send: DirectorySend;
  /** The signed-in admin (for error texts). */
  account: string;
  secretBox: SecretBox;
  lang: Lang;
  now?: () => Date;
  /** Told of each read before it is made. */
  onRead?: (path: string) => void;
  /** Told of each write (done, or planned in dry-run and check) as it happens. */
  onWrite?: (write: PlannedWrite) => void;
  /** Writes settings into mailbridge.yaml (secret ones sealed). */
  storeSettings: (entries: Array<{ path: string[]; value: string; secret?: boolean }>) => Promise<void>;
}

export interface PlannedWrite {
  method: 'POST' | 'PATCH';
  path: string;
  body: unknown;
  why: Text;
  /** False in dry-run and check. */
  sent: boolean;
}

export interface SetupResult {
  connection: string;
  mode: SetupMode;
  requirements: ConnectionRequirements;
  app: { appId: string; objectId: string; displayName: string; servicePrincipalId: string; created: boolean };
  reads: number;
  writes: PlannedWrite[];
  /** What is missing (check), or could not be done (apply: a certificate that cannot be added). */
  missing: Text[];
  /** Settings written (or that would be) into mailbridge.yaml; secrets as "(sealed)". */
  settings: Array<{ path: string; value: string }>;
  /** The Exchange PowerShell script (not in check mode). */
  script?: string;
  credential?: { kind: 'certificate' | 'secret'; expires: string; certFile?: string; keyFile?: string; created: boolean };
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Placeholders a dry run prints for IDs that do not exist yet. */
const NEW = { appId: '<appId of the new app>', objectId: '<id of the new app>', sp: '<id of the new service principal>' };

interface ResourceSp {
  id: string;
  appRoles: Array<{ id: string; value: string }>;
  oauth2PermissionScopes: Array<{ id: string; value: string }>;
}

export async function runSetup(o: SetupOptions): Promise<SetupResult> {
  const conn = o.config.connections[o.connection];
  if (!conn) throw new MbError('MB_IDENTITY_UNKNOWN_CONNECTION', { connection: o.connection, known: Object.keys(o.config.connections).join(', ') || '—' });
  const req = connectionRequirements(o.config, o.connection) as ConnectionRequirements;
  const now = o.now ?? (() => new Date());
  const months = o.validMonths ?? 12;
  const displayName = o.displayName ?? `mailbridge ${o.connection}`;
  const apply = o.mode === 'apply';
  const result: SetupResult = {
    connection: o.connection,
    mode: o.mode,
    requirements: req,
    app: { appId: conn.clientId, objectId: '', displayName, servicePrincipalId: '', created: false },
    reads: 0,
    writes: [],
    missing: [],
    settings: [],
  };
  const missing = (en: string, de: string) => result.missing.push({ en, de });

  // --- Graph, with errors an admin can act on ----------------------------------------------------
  const call = async (method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown, role = 'Application Administrator'): Promise<Record<string, unknown>> => {
    const reply = await o.send(method, path, body);
    if (reply.status < 300) return reply.json ?? {};
    const e = (reply.json?.error ?? {}) as { code?: string; message?: string };
    if (reply.status === 403 && e.code === 'Authorization_RequestDenied') {
      throw new MbError('MB_SETUP_ADMIN_DENIED', { request: `${method} ${path}`, message: e.message ?? '', account: o.account, role, connection: o.connection });
    }
    throw new MbError('MB_SETUP_GRAPH_FAILED', {
      request: `${method} ${path}`,
      status: reply.status,
      code: e.code ?? '',
      message: e.message ?? reply.text.slice(0, 300),
      requestId: reply.requestId || '—',
      connection: o.connection,
      app: result.app.displayName,
    });
  };
  const read: DirectoryGet = async (path) => {
    result.reads++;
    o.onRead?.(path);
    return call('GET', path);
  };
  const list = async <T>(path: string): Promise<T[]> => ((await read(path)).value as T[] | undefined) ?? [];
  /** A write: sent in apply mode, reported in the others; returns Graph's answer (or {} when not sent). */
  const write = async (method: 'POST' | 'PATCH', path: string, body: unknown, why: Text, role?: string): Promise<Record<string, unknown>> => {
    const planned: PlannedWrite = { method, path, body, why, sent: apply };
    result.writes.push(planned);
    o.onWrite?.(planned);
    if (!apply) return {};
    return call(method, path, body, role);
  };

  // --- the resource service principals whose permissions the app needs ------------------------------
  const resources = new Map<Resource, ResourceSp>();
  for (const r of new Set(req.permissions.map((p) => p.resource))) {
    const sp = await findServicePrincipal<ResourceSp>(read, RESOURCE_APP_IDS[r]);
    if (!sp) throw new MbError('MB_SETUP_NO_RESOURCE', { tenant: conn.tenantId, resource: RESOURCE_NAMES[r], resourceAppId: RESOURCE_APP_IDS[r], connection: o.connection });
    resources.set(r, sp);
  }
  const idOf = (p: PermissionNeed): string | undefined => {
    const sp = resources.get(p.resource);
    const own = (p.type === 'Role' ? sp?.appRoles : sp?.oauth2PermissionScopes)?.find((x) => x.value.toLowerCase() === p.name.toLowerCase());
    return own?.id ?? p.id;
  };
  const wanted = req.permissions.flatMap((p) => {
    const id = idOf(p);
    return id ? [{ p, id }] : [];
  });
  const wantedAccess = () => {
    const out: Array<{ resourceAppId: string; resourceAccess: Array<{ id: string; type: string }> }> = [];
    for (const { p, id } of wanted) {
      let e = out.find((x) => x.resourceAppId === p.resourceAppId);
      if (!e) out.push((e = { resourceAppId: p.resourceAppId, resourceAccess: [] }));
      e.resourceAccess.push({ id, type: p.type });
    }
    return out;
  };

  // --- the application ---------------------------------------------------------------------------------
  let app: GraphApp | undefined;
  if (GUID.test(conn.clientId)) {
    app = await findApplication(read, conn.clientId);
    if (!app) throw new MbError('MB_SETUP_APP_NOT_FOUND', { connection: o.connection, clientId: conn.clientId, tenant: conn.tenantId });
  } else {
    // Not created yet, or created by a run that stopped before it could write the client ID.
    const found = await list<GraphApp>(`/applications?${odataFilter('displayName', displayName)}`);
    if (found.length > 1) {
      throw new MbError('MB_SETUP_APP_AMBIGUOUS', { tenant: conn.tenantId, count: found.length, name: displayName, appIds: found.map((a) => a.appId).join(', '), connection: o.connection });
    }
    app = found[0];
  }
  const settings: Array<{ path: string[]; value: string; secret?: boolean }> = [];
  const base = ['connections', o.connection];
  if (!app) {
    const body: Record<string, unknown> = {
      displayName,
      signInAudience: 'AzureADMyOrg',
      requiredResourceAccess: wantedAccess(),
      ...(req.redirectUris.web.length ? { web: { redirectUris: req.redirectUris.web } } : {}),
      ...(req.publicClient ? { isFallbackPublicClient: true } : {}),
      ...(req.consoleRoles ? { appRoles: consoleAppRoles([]) } : {}),
    };
    if (o.mode === 'check') missing('the app registration itself (nothing else can be checked before it exists)', 'die App-Registrierung selbst (vorher lässt sich nichts weiter prüfen)');
    const created = await write('POST', '/applications', body, {
      en: `create the app registration "${displayName}" with its API permissions${req.redirectUris.web.length ? ', redirect URI' : ''}${req.publicClient ? ', public client flows' : ''}${req.consoleRoles ? ', app roles reader, operator, admin' : ''}`,
      de: `App-Registrierung „${displayName}“ mit ihren API-Berechtigungen${req.redirectUris.web.length ? ', Umleitungs-URI' : ''}${req.publicClient ? ', öffentlichen Clientflows' : ''}${req.consoleRoles ? ', App-Rollen reader, operator, admin' : ''} anlegen`,
    });
    app = apply ? (created as unknown as GraphApp) : { id: NEW.objectId, appId: NEW.appId, displayName, keyCredentials: [], passwordCredentials: [] };
    result.app.created = true;
    if (apply) await o.storeSettings([{ path: [...base, 'clientId'], value: app.appId }]);
    result.settings.push({ path: `connections.${o.connection}.clientId`, value: app.appId });
  } else {
    if (!GUID.test(conn.clientId)) {
      settings.push({ path: [...base, 'clientId'], value: app.appId });
    }
    // requiredResourceAccess: add what is missing, keep what the admin added.
    const current = structuredClone(app.requiredResourceAccess ?? []);
    let changed = false;
    // The portal's column "Type": Application / Delegated, in German Anwendung / Delegiert.
    const lacking: Array<{ en: string; de: string }> = [];
    for (const { p, id } of wanted) {
      let e = current.find((x) => x.resourceAppId.toLowerCase() === p.resourceAppId.toLowerCase());
      if (!e) current.push((e = { resourceAppId: p.resourceAppId, resourceAccess: [] }));
      if (!e.resourceAccess.some((a) => a.id.toLowerCase() === id.toLowerCase() && a.type === p.type)) {
        e.resourceAccess.push({ id, type: p.type });
        changed = true;
        const role = p.type === 'Role';
        lacking.push({ en: `${p.name} (${RESOURCE_NAMES[p.resource]}, ${role ? 'Application' : 'Delegated'})`, de: `${p.name} (${RESOURCE_NAMES[p.resource]}, ${role ? 'Anwendung' : 'Delegiert'})` });
      }
    }
    const patch: Record<string, unknown> = {};
    if (changed) patch.requiredResourceAccess = current;
    const uris = app.web?.redirectUris ?? [];
    const addUris = req.redirectUris.web.filter((u) => !uris.includes(u));
    if (addUris.length) patch.web = { redirectUris: [...uris, ...addUris] };
    if (req.publicClient && app.isFallbackPublicClient !== true) patch.isFallbackPublicClient = true;
    // The console's app roles: added to those the app has (Graph's PATCH replaces the collection).
    const roles = app.appRoles ?? [];
    const addRoles = req.consoleRoles ? consoleAppRoles(roles) : [];
    if (addRoles.length) patch.appRoles = [...roles, ...addRoles];
    if (Object.keys(patch).length) {
      const what = [
        ...(lacking.length ? [`API permissions ${lacking.map((l) => l.en).join(', ')}`] : []),
        ...(addUris.length ? [`redirect URI ${addUris.join(', ')}`] : []),
        ...(patch.isFallbackPublicClient ? ['Allow public client flows'] : []),
        ...(addRoles.length ? [`app roles ${addRoles.map((r) => r.value).join(', ')} (console sign-in)`] : []),
      ].join('; ');
      const whatDe = [
        ...(lacking.length ? [`API-Berechtigungen ${lacking.map((l) => l.de).join(', ')}`] : []),
        ...(addUris.length ? [`Umleitungs-URI ${addUris.join(', ')}`] : []),
        ...(patch.isFallbackPublicClient ? ['Öffentliche Clientflows zulassen'] : []),
        ...(addRoles.length ? [`App-Rollen ${addRoles.map((r) => r.value).join(', ')} (Anmeldung an der Konsole)`] : []),
      ].join('; ');
      if (o.mode === 'check') missing(`on the app registration: ${what}`, `an der App-Registrierung: ${whatDe}`);
      await write('PATCH', `/applications/${app.id}`, patch, { en: `add to the app registration: ${what}`, de: `an der App-Registrierung ergänzen: ${whatDe}` });
    }
  }
  result.app.appId = app.appId;
  result.app.objectId = app.id;
  result.app.displayName = app.displayName;

  // --- the enterprise application (service principal) -------------------------------------------------
  let sp: { id: string } | undefined;
  if (!result.app.created) sp = await findServicePrincipal(read, app.appId);
  if (!sp) {
    if (o.mode === 'check' && !result.app.created) missing('the enterprise application (service principal) of the app', 'die Unternehmensanwendung (Dienstprinzipal) der App');
    const created = await write('POST', '/servicePrincipals', { appId: app.appId }, {
      en: 'create the enterprise application (service principal): tokens, consent and Exchange all refer to it',
      de: 'Unternehmensanwendung (Dienstprinzipal) anlegen: Token, Zustimmung und Exchange beziehen sich auf sie',
    });
    sp = apply ? { id: String(created.id) } : { id: NEW.sp };
  }
  result.app.servicePrincipalId = sp.id;
  const spIsNew = sp.id === NEW.sp || result.app.created;

  // --- admin consent: application permissions ----------------------------------------------------------
  const roles = wanted.filter((w) => w.p.type === 'Role');
  if (roles.length) {
    const assigned = spIsNew && !apply ? [] : await appRoleGrants(read, sp.id);
    for (const { p, id } of roles) {
      const resource = resources.get(p.resource) as ResourceSp;
      if (assigned.some((a) => a.resourceId.toLowerCase() === resource.id.toLowerCase() && a.appRoleId.toLowerCase() === id.toLowerCase())) continue;
      const users = usesText(p.usedBy);
      if (o.mode === 'check' && !spIsNew) missing(`admin consent for ${p.name} (${RESOURCE_NAMES[p.resource]}), needed by ${users.en}`, `Administratorzustimmung für ${p.name} (${RESOURCE_NAMES[p.resource]}), gebraucht von ${users.de}`);
      await write(
        'POST',
        `/servicePrincipals/${sp.id}/appRoleAssignments`,
        { principalId: sp.id, resourceId: resource.id, appRoleId: id },
        { en: `grant admin consent for ${p.name} (${RESOURCE_NAMES[p.resource]}): ${users.en}`, de: `Administratorzustimmung für ${p.name} (${RESOURCE_NAMES[p.resource]}) erteilen: ${users.de}` },
        // Consent to Microsoft Graph's application permissions is a privileged role's to give.
        p.resource === 'graph' ? 'Privileged Role Administrator' : 'Application Administrator',
      );
    }
  }

  // --- admin consent: delegated permissions (auth-code, device-code) -----------------------------------
  const scopes = wanted.filter((w) => w.p.type === 'Scope');
  if (scopes.length) {
    const grants = spIsNew && !apply ? [] : await list<{ id: string; resourceId: string; consentType: string; scope?: string }>(`/oauth2PermissionGrants?${odataFilter('clientId', sp.id)}`);
    for (const r of new Set(scopes.map((s) => s.p.resource))) {
      const resource = resources.get(r) as ResourceSp;
      const names = scopes.filter((s) => s.p.resource === r).map((s) => s.p.name);
      const grant = grants.find((g) => g.consentType === 'AllPrincipals' && g.resourceId.toLowerCase() === resource.id.toLowerCase());
      const have = (grant?.scope ?? '').split(/\s+/).filter(Boolean);
      const lacking = names.filter((n) => !have.some((h) => h.toLowerCase() === n.toLowerCase()));
      if (lacking.length === 0) continue;
      if (o.mode === 'check' && !spIsNew) missing(`consent for the organization to ${lacking.join(', ')} (${RESOURCE_NAMES[r]})`, `Zustimmung für die Organisation zu ${lacking.join(', ')} (${RESOURCE_NAMES[r]})`);
      const why = { en: `grant consent for the organization to ${lacking.join(', ')} (${RESOURCE_NAMES[r]})`, de: `Zustimmung für die Organisation zu ${lacking.join(', ')} (${RESOURCE_NAMES[r]}) erteilen` };
      const role = r === 'graph' ? 'Privileged Role Administrator' : 'Application Administrator';
      if (grant) await write('PATCH', `/oauth2PermissionGrants/${grant.id}`, { scope: [...have, ...lacking].join(' ') }, why, role);
      else await write('POST', '/oauth2PermissionGrants', { clientId: sp.id, consentType: 'AllPrincipals', resourceId: resource.id, scope: names.join(' ') }, why, role);
    }
  }

  // --- the credential ------------------------------------------------------------------------------------
  if (conn.flow !== 'device-code') {
    await credential(o, conn, app, { write, missing, settings, result, months, now, apply, base });
  }

  if (settings.length) {
    for (const s of settings) result.settings.push({ path: s.path.join('.'), value: s.secret ? '(sealed)' : s.value });
    if (apply) await o.storeSettings(settings);
  }
  if (o.mode !== 'check') {
    result.script = exchangeScript(req, { appId: app.appId, displayName: app.displayName, servicePrincipalId: sp.id }, o.lang, now());
  }
  return result;
}

interface CredentialContext {
  write: (method: 'POST' | 'PATCH', path: string, body: unknown, why: Text) => Promise<Record<string, unknown>>;
  missing: (en: string, de: string) => void;
  settings: Array<{ path: string[]; value: string; secret?: boolean }>;
  result: SetupResult;
  months: number;
  now: () => Date;
  apply: boolean;
  base: string[];
}

/**
 * Keep a configured credential that the app knows; else make one of the same kind (or, with none
 * configured, the kind asked for) and register it on the app.
 */
async function credential(o: SetupOptions, conn: ConnectionConfig, app: GraphApp, c: CredentialContext): Promise<void> {
  const kind = conn.clientSecret ? 'secret' : conn.certificate ? 'certificate' : (o.credential ?? 'certificate');
  const until = new Date(c.now().getTime());
  until.setUTCMonth(until.getUTCMonth() + c.months);
  if (kind === 'secret') {
    if (conn.clientSecret) {
      const clear = revealSecret(o.secretBox, conn.clientSecret, o.connection, `connections.${o.connection}.clientSecret`);
      const on = (app.passwordCredentials ?? []).find((p) => p.hint && clear.startsWith(p.hint) && (!p.endDateTime || Date.parse(p.endDateTime) > c.now().getTime()));
      if (on) {
        c.result.credential = { kind, expires: (on.endDateTime ?? '').slice(0, 10), created: false };
        return;
      }
    }
    if (o.mode === 'check') {
      c.missing('a client secret the app knows (the configured one is missing, unknown to the app or expired)', 'ein geheimer Clientschlüssel, den die App kennt (der eingetragene fehlt, ist der App unbekannt oder abgelaufen)');
      return;
    }
    const answer = await c.write(
      'POST',
      `/applications/${app.id}/addPassword`,
      { passwordCredential: { displayName: `mailbridge ${o.connection}`, endDateTime: until.toISOString() } },
      { en: `add a client secret valid until ${day(until)}`, de: `geheimen Clientschlüssel bis ${day(until)} hinzufügen` },
    );
    const expires = c.apply ? String(answer.endDateTime ?? until.toISOString()) : until.toISOString();
    if (c.apply) {
      const secret = String(answer.secretText ?? '');
      // Returned once, here; from now on only its sealed form exists.
      registerSecret(secret);
      c.settings.push({ path: [...c.base, 'clientSecret'], value: secret, secret: true });
    } else c.result.settings.push({ path: `connections.${o.connection}.clientSecret`, value: '(sealed)' });
    c.settings.push({ path: [...c.base, 'clientSecretExpires'], value: expires.slice(0, 10) });
    c.result.credential = { kind, expires: expires.slice(0, 10), created: true };
    return;
  }

  // certificate
  const onApp = (thumbprintHex: string) =>
    (app.keyCredentials ?? []).some((k) => {
      const id = (k.customKeyIdentifier ?? '').toLowerCase();
      return id === thumbprintHex.toLowerCase() || id === Buffer.from(thumbprintHex, 'hex').toString('base64').toLowerCase();
    });
  let certPem: string;
  let expires: Date;
  if (conn.certificate) {
    const password = conn.certificate.password !== undefined ? revealSecret(o.secretBox, conn.certificate.password, o.connection, `connections.${o.connection}.certificate.password`) : undefined;
    const loaded = await loadCertificate(o.connection, conn.certificate, password);
    if (onApp(loaded.thumbprintSha1)) {
      c.result.credential = { kind, expires: day(loaded.notAfter), certFile: loaded.path, created: false };
      return;
    }
    const x509 = new X509Certificate(await readFile(loaded.path, 'utf8'));
    certPem = x509.toString();
    expires = loaded.notAfter;
    c.result.credential = { kind, expires: day(expires), certFile: loaded.path, created: false };
  } else {
    if (o.mode === 'check') {
      c.missing('a credential: connections.' + o.connection + ' has neither certificate nor clientSecret', 'ein Berechtigungsnachweis: connections.' + o.connection + ' hat weder certificate noch clientSecret');
      return;
    }
    const dir = dirname(resolve(o.configPath));
    const certFile = join(dir, `${o.connection}-app.crt`);
    const keyFile = join(dir, `${o.connection}-app.key`);
    const made = selfSignedCertificate({ commonName: `mailbridge ${o.connection}`, notBefore: new Date(c.now().getTime() - 60_000), notAfter: until, use: 'signing' });
    certPem = made.certPem;
    expires = until;
    if (c.apply) {
      // The key never leaves this machine: encrypted with a random password that only the sealed
      // configuration holds, in a file only the owner reads.
      const password = randomBytes(24).toString('base64url');
      registerSecret(password);
      const encrypted = createPrivateKey(made.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: password }).toString();
      await writeFile(keyFile, encrypted, { mode: 0o600 });
      await writeFile(certFile, made.certPem, { mode: 0o644 });
      c.settings.push(
        { path: [...c.base, 'certificate', 'path'], value: certFile },
        { path: [...c.base, 'certificate', 'privateKeyPath'], value: keyFile },
        { path: [...c.base, 'certificate', 'password'], value: password, secret: true },
      );
    } else {
      c.result.settings.push(
        { path: `connections.${o.connection}.certificate.path`, value: certFile },
        { path: `connections.${o.connection}.certificate.privateKeyPath`, value: keyFile },
        { path: `connections.${o.connection}.certificate.password`, value: '(sealed)' },
      );
    }
    c.result.credential = { kind, expires: day(expires), certFile, keyFile, created: true };
  }
  if ((app.keyCredentials ?? []).length > 0) {
    // PATCH would replace the certificates the app has; addKey needs a proof signed by one of them.
    const file = c.result.credential?.certFile ?? '';
    c.missing(
      `the certificate ${file} on the app: the app has other certificates, which setup does not replace. Upload it: Entra admin center › Identity › Applications › App registrations › ${app.displayName} › Certificates & secrets › Certificates › Upload certificate`,
      `das Zertifikat ${file} an der App: Die App hat andere Zertifikate, die die Einrichtung nicht ersetzt. Hochladen: Entra Admin Center › Identität › Anwendungen › App-Registrierungen › ${app.displayName} › Zertifikate & Geheimnisse › Zertifikate › Zertifikat hochladen`,
    );
    return;
  }
  if (o.mode === 'check') {
    c.missing('the configured certificate on the app registration', 'das eingetragene Zertifikat an der App-Registrierung');
    return;
  }
  const der = new X509Certificate(certPem).raw.toString('base64');
  await c.write(
    'PATCH',
    `/applications/${app.id}`,
    { keyCredentials: [{ type: 'AsymmetricX509Cert', usage: 'Verify', key: der, displayName: `CN=mailbridge ${o.connection}` }] },
    { en: `upload the public certificate (valid until ${day(expires)}); its private key stays on this machine`, de: `das öffentliche Zertifikat hochladen (gültig bis ${day(expires)}); sein privater Schlüssel bleibt auf diesem Rechner` },
  );
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

export { setupWillCreate } from './relax.ts';

/** The Graph base URL setup talks to: --graph-url, else one the configuration gives for this connection, else the cloud's. */
export function setupGraphUrl(config: Config, connection: string, given?: string): string | undefined {
  if (given) return given;
  const urls: string[] = [];
  for (const r of config.relay?.routes ?? []) if (r.connection === connection && r.graph.url) urls.push(r.graph.url);
  for (const c of Object.values(config.connectors ?? {})) if (c.connection === connection && c.source.kind === 'graph' && c.source.baseUrl) urls.push(c.source.baseUrl);
  for (const g of Object.values(config.notify?.watch?.groups ?? {})) {
    if (g.kind === 'graph' && g.graph.baseUrl && g.listeners.some((l) => l.connection === connection)) urls.push(g.graph.baseUrl);
  }
  return urls[0];
}

/** Scopes the admin's sign-in asks for (Microsoft Graph, in the connection's cloud). */
export function adminScopes(conn: ConnectionConfig): string[] {
  const graph = `https://${cloudFor(conn.cloud).graphHost}`;
  return ['Application.ReadWrite.All', 'AppRoleAssignment.ReadWrite.All', 'DelegatedPermissionGrant.ReadWrite.All'].map((s) => `${graph}/${s}`);
}

/** The console's app roles (requirements.ts) the app does not define yet, each with a new ID as Graph requires. */
function consoleAppRoles(have: NonNullable<GraphApp['appRoles']>): Array<{ id: string; value: string; displayName: string; description: string; allowedMemberTypes: string[]; isEnabled: boolean }> {
  return CONSOLE_APP_ROLES.filter((r) => !have.some((h) => h.value === r.value)).map((r) => ({
    id: randomUUID(),
    value: r.value,
    displayName: r.displayName,
    description: r.description,
    allowedMemberTypes: ['User'],
    isEnabled: true,
  }));
}
