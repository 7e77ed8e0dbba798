import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/app/schema.ts';
import { appRequirements, CONSOLE_APP_ROLES, connectionRequirements, requiredResourceAccess, USE, usesText, type ConnectionRequirements } from '../../src/setup/requirements.ts';

const TENANT = '11111111-2222-3333-4444-555555555555';
const conn = (extra: Record<string, unknown> = {}) => ({ tenantId: TENANT, clientId: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', ...extra });

const perms = (r: ConnectionRequirements) => r.permissions.map((p) => `${p.resource}:${p.type}:${p.name}`);
const mailbox = (r: ConnectionRequirements, address: string) => r.mailboxes.find((m) => m.address === address);

test('app-only SMTP relay: SMTP.SendAsApp, the Exchange service principal, FullAccess and SMTP AUTH for the sending mailbox, SendAs for other From addresses', () => {
  const config = configSchema.parse({
    connections: { contoso: conn() },
    relay: {
      networks: { scanners: { cidrs: ['10.0.0.0/24'], allowedSenders: ['scanner@contoso.com', 'Noreply@Contoso.com', '@contoso.com'] } },
      routes: [
        { name: 'noreply', senders: ['noreply@contoso.com'], connection: 'contoso' },
        { name: 'shared', senders: ['@contoso.com'], connection: 'contoso', mailbox: 'relay@contoso.com' },
      ],
    },
  });
  const [r] = appRequirements(config);
  assert.ok(r);
  assert.deepEqual(perms(r), ['exchange:Role:SMTP.SendAsApp']);
  assert.equal(r.permissions[0]?.id, '7146a1f0-8703-45b3-9eae-527a64c00995');
  assert.equal(r.exchangeServicePrincipal, true);
  assert.equal(r.publicClient, false);
  assert.deepEqual(r.redirectUris, { web: [], publicClient: [] });
  // noreply@ is its own sending mailbox (route without a fixed mailbox)
  assert.deepEqual(mailbox(r, 'noreply@contoso.com'), { address: 'noreply@contoso.com', fullAccess: true, sendAs: false, smtpAuth: true, usedBy: ['relay route noreply'] });
  // the fixed mailbox sends; scanner@ is a From address it sends as (no sendAs list: Exchange decides)
  assert.deepEqual(mailbox(r, 'relay@contoso.com'), { address: 'relay@contoso.com', fullAccess: true, sendAs: false, smtpAuth: true, usedBy: ['relay route shared'] });
  assert.deepEqual(mailbox(r, 'scanner@contoso.com'), { address: 'scanner@contoso.com', fullAccess: false, sendAs: true, smtpAuth: false, usedBy: ['relay route shared'] });
  assert.deepEqual(r.mailboxes.map((m) => m.address), ['noreply@contoso.com', 'relay@contoso.com', 'scanner@contoso.com']);
  // @contoso.com goes to the route with a fixed mailbox, so it is not open
  assert.deepEqual(r.openSenders, []);
  assert.deepEqual(requiredResourceAccess(r), [{ resourceAppId: '00000002-0000-0ff1-ce00-000000000000', resourceAccess: [{ id: '7146a1f0-8703-45b3-9eae-527a64c00995', type: 'Role' }] }]);
});

test('sendAs list: its addresses need SendAs; rewritten senders need none; a domain without a fixed mailbox is an open sender', () => {
  const config = configSchema.parse({
    connections: { contoso: conn() },
    relay: {
      networks: { erp: { cidrs: ['10.0.0.0/24'], allowedSenders: ['erp@contoso.com'] }, any: { cidrs: ['10.0.1.0/24'], allowedSenders: ['@fabrikam.com'] } },
      routes: [
        { name: 'erp', senders: ['erp@contoso.com'], connection: 'contoso', mailbox: 'relay@contoso.com', sendAs: ['info@contoso.com'], rewriteFrom: true },
        { name: 'rest', connection: 'contoso', transport: 'graph' },
      ],
    },
  });
  const r = connectionRequirements(config, 'contoso');
  assert.ok(r);
  assert.deepEqual(perms(r), ['exchange:Role:SMTP.SendAsApp', 'graph:Role:Mail.Send']);
  assert.equal(mailbox(r, 'erp@contoso.com'), undefined);
  assert.deepEqual(mailbox(r, 'info@contoso.com'), { address: 'info@contoso.com', fullAccess: false, sendAs: true, smtpAuth: false, usedBy: ['relay route erp'] });
  assert.deepEqual(r.openSenders, [{ pattern: '@fabrikam.com', usedBy: 'relay route rest', fullAccess: false, smtpAuth: false }]);
});

test('Graph sendMail with SMTP fallback needs both Mail.Send and SMTP.SendAsApp; Graph alone needs no mailbox permission', () => {
  const config = configSchema.parse({
    connections: { a: conn(), b: conn({ clientId: 'bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee' }) },
    relay: {
      routes: [
        { name: 'fb', senders: ['x@contoso.com'], connection: 'a', transport: 'graph', graph: { fallback: 'smtp' } },
        { name: 'g', senders: ['y@contoso.com'], connection: 'b', transport: 'graph' },
      ],
    },
  });
  const [a, b] = appRequirements(config);
  assert.ok(a && b);
  assert.deepEqual(perms(a), ['exchange:Role:SMTP.SendAsApp', 'graph:Role:Mail.Send']);
  assert.deepEqual(mailbox(a, 'x@contoso.com'), { address: 'x@contoso.com', fullAccess: true, sendAs: false, smtpAuth: true, usedBy: ['relay route fb'] });
  assert.deepEqual(perms(b), ['graph:Role:Mail.Send']);
  assert.equal(b.exchangeServicePrincipal, false);
  assert.deepEqual(mailbox(b, 'y@contoso.com'), { address: 'y@contoso.com', fullAccess: false, sendAs: false, smtpAuth: false, usedBy: ['relay route g'] });
});

test('connectors: IMAP needs IMAP.AccessAsApp and FullAccess; Graph reads with Mail.Read only when nothing is changed, else Mail.ReadWrite', () => {
  const destination = { kind: 'maildir', path: '/tmp/x' };
  const config = configSchema.parse({
    connections: { c: conn() },
    connectors: {
      scans: { connection: 'c', mailboxes: ['scanner@contoso.com', { address: 'Invoices@contoso.com', folders: ['INBOX'] }], destination },
      gseen: { connection: 'c', source: { kind: 'graph' }, mailboxes: ['a@contoso.com'], destination },
      gnone: { connection: 'c', source: { kind: 'graph' }, mailboxes: ['b@contoso.com'], destination, after: { action: 'none' } },
    },
  });
  const r = connectionRequirements(config, 'c');
  assert.ok(r);
  assert.deepEqual(perms(r), ['exchange:Role:IMAP.AccessAsApp', 'graph:Role:Mail.Read', 'graph:Role:Mail.ReadWrite']);
  assert.deepEqual(r.permissions.find((p) => p.name === 'Mail.ReadWrite')?.usedBy, ['connector gseen']);
  assert.equal(r.exchangeServicePrincipal, true);
  assert.deepEqual(mailbox(r, 'invoices@contoso.com'), { address: 'invoices@contoso.com', fullAccess: true, sendAs: false, smtpAuth: false, usedBy: ['connector scans'] });
  assert.equal(mailbox(r, 'a@contoso.com')?.fullAccess, false);
});

test('watchers: Graph needs Mail.Read, EWS full_access_as_app without a service principal in Exchange, on-premises accounts need nothing', () => {
  const config = configSchema.parse({
    connections: { g: conn(), e: conn({ clientId: 'eeeeeeee-bbbb-cccc-dddd-eeeeeeeeeeee' }), unused: conn({ clientId: 'ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee' }) },
    notify: {
      watch: {
        groups: {
          sales: { kind: 'graph', listeners: [{ connection: 'g' }], mailboxes: ['anna@contoso.com'] },
          cloud: { kind: 'ews', listeners: [{ connection: 'e' }], mailboxes: ['otto@contoso.com'] },
          plant: { kind: 'ews', listeners: [{ username: 'svc', password: 'x' }], mailboxes: ['meister@plant.contoso.com'] },
        },
      },
    },
  });
  const [g, e, unused] = appRequirements(config);
  assert.ok(g && e && unused);
  assert.deepEqual(perms(g), ['graph:Role:Mail.Read']);
  assert.equal(g.mailboxes[0]?.fullAccess, false);
  assert.deepEqual(perms(e), ['exchange:Role:full_access_as_app']);
  assert.equal(e.exchangeServicePrincipal, false);
  assert.deepEqual(unused.usedBy, []);
  assert.deepEqual(unused.permissions, []);
});

test('delegated: device code is a public client; auth code registers its redirect URI; scopes follow the cloud; a shared mailbox needs FullAccess for the account', () => {
  const config = configSchema.parse({
    server: { publicUrl: 'https://mailbridge.contoso.com/' },
    connections: {
      dev: conn({ flow: 'device-code', account: 'Anna@contoso.com', cloud: 'gcc-high' }),
      web: conn({ flow: 'auth-code', account: 'otto@contoso.com', clientId: 'cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee' }),
    },
    relay: { routes: [{ name: 'anna', connection: 'dev' }] },
    connectors: { shared: { connection: 'web', mailboxes: ['team@contoso.com', 'otto@contoso.com'], destination: { kind: 'maildir', path: '/tmp/y' } } },
  });
  const [dev, web] = appRequirements(config);
  assert.ok(dev && web);
  assert.equal(dev.publicClient, true);
  assert.deepEqual(dev.redirectUris, { web: [], publicClient: [] });
  assert.deepEqual(perms(dev), [
    'exchange:Scope:IMAP.AccessAsUser.All',
    'exchange:Scope:SMTP.Send',
    'graph:Scope:offline_access',
    'graph:Scope:openid',
    'graph:Scope:profile',
  ]);
  assert.ok(dev.permissions.every((p) => p.id !== undefined));
  assert.equal(dev.exchangeServicePrincipal, false);
  // the account sends as itself: no FullAccess, but SMTP AUTH for its mailbox
  assert.deepEqual(mailbox(dev, 'anna@contoso.com'), { address: 'anna@contoso.com', fullAccess: false, sendAs: false, smtpAuth: true, usedBy: ['relay route anna'] });
  assert.equal(web.publicClient, false);
  assert.deepEqual(web.redirectUris.web, ['https://mailbridge.contoso.com/oauth/callback']);
  assert.equal(mailbox(web, 'team@contoso.com')?.fullAccess, true);
  assert.equal(mailbox(web, 'otto@contoso.com')?.fullAccess, false);
});

test('what uses a connection is named in each language: relay route, connector, watch group', () => {
  const keys = [USE.route('erp'), USE.connector('scans'), USE.group('vertrieb')];
  assert.deepEqual(usesText(keys), { en: 'relay route erp, connector scans, watch group vertrieb', de: 'Relay-Route erp, Konnektor scans, Überwachungsgruppe vertrieb' });
  // A name that holds a label word stays as it is; only the prefix is translated.
  assert.deepEqual(usesText([USE.connector('watch group')]), { en: 'connector watch group', de: 'Konnektor watch group' });
});

test('api.signin.entra: its connection needs openid and profile, the console redirect URI and the app roles reader, operator, admin; other connections none of it', () => {
  const config = configSchema.parse({
    server: { publicUrl: 'https://mailbridge.contoso.com/' },
    connections: { app: conn({}), other: conn({ clientId: 'cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee' }) },
    relay: { routes: [{ name: 'erp', connection: 'app', transport: 'graph' }] },
    api: { signin: { entra: { connection: 'app' } } },
  });
  const [app, other] = appRequirements(config);
  assert.ok(app && other);
  assert.equal(app.consoleRoles, true);
  assert.equal(other.consoleRoles, false);
  assert.deepEqual(perms(app), ['graph:Role:Mail.Send', 'graph:Scope:openid', 'graph:Scope:profile']);
  assert.deepEqual(app.redirectUris.web, ['https://mailbridge.contoso.com/login/entra/callback']);
  assert.deepEqual(app.usedBy, ['relay route erp', 'console sign-in']);
  assert.deepEqual(usesText(app.usedBy), { en: 'relay route erp, console sign-in', de: 'Relay-Route erp, Anmeldung an der Konsole' });
  assert.deepEqual(CONSOLE_APP_ROLES.map((r) => r.value), ['reader', 'operator', 'admin']);
  // Its own redirect URI when api.signin.entra names one.
  const own = configSchema.parse({ ...config, api: { signin: { entra: { connection: 'app', redirectUri: 'https://mb.contoso.com/login/entra/callback' } } } });
  assert.deepEqual(appRequirements(own)[0]!.redirectUris.web, ['https://mb.contoso.com/login/entra/callback']);
});

