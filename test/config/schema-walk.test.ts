import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { resolvePath, secretPathFor, secretPatterns, secretSlots } from '../../src/app/config.ts';
import { closest, secretPatterns as secretPatternsOf, slotNeeded } from '../../src/config/schema-walk.ts';
import { secretField } from '../../src/config/secret-field.ts';
import { MbError } from '../../src/errors/index.ts';

test('the secret settings are derived from the schema marks', () => {
  assert.deepEqual(secretPatterns().sort(), [
    'api.keys.<name>.key',
    'connections.<name>.certificate.password',
    'connections.<name>.clientSecret',
    'connectors.<name>.destination.auth.pass',
    'connectors.<name>.destination.secret',
    'notify.api.keys.<name>',
    'notify.apns.privateKey',
    'notify.fcm.serviceAccount',
    'notify.watch.groups.<name>.imap.auth.password',
    'notify.watch.groups.<name>.listeners.<n>.password',
    'notify.webpush.vapid.privateKey',
    'server.metricsToken',
    'store.url',
  ]);
  // A schema with a new secret somewhere (as a later relay section will have) needs only the mark.
  const other = z.object({
    relay: z.object({ users: z.record(z.string(), z.object({ password: secretField(), name: z.string() })) }).optional(),
    plain: z.string().meta({ description: 'not secret' }),
    wrapped: z.object({ token: z.string().meta({ secret: true }).optional().default('x') }).default({ token: 'x' }),
  });
  assert.deepEqual(secretPatternsOf(other).sort(), ['relay.users.<name>.password', 'wrapped.token']);
});

test('secret slots follow the configuration: connections, certificates, the postgres store only', () => {
  const raw = {
    store: { driver: 'postgres', url: 'enc:v1:xyz' },
    connections: { a: { clientSecret: 'p' }, b: { certificate: { path: 'x.pfx' } } },
  };
  assert.deepEqual(
    secretSlots(raw).map((s) => [s.path, s.value]),
    [
      ['store.url', 'enc:v1:xyz'],
      ['connections.a.clientSecret', 'p'],
      ['connections.b.clientSecret', undefined],
      ['connections.b.certificate.password', undefined],
    ],
  );
  // An unset clientSecret is a gap only when the connection has no other credential.
  const needed = Object.fromEntries(secretSlots(raw).map((s) => [s.path, slotNeeded(s)]));
  assert.deepEqual(needed, { 'store.url': true, 'connections.a.clientSecret': false, 'connections.b.clientSecret': false, 'connections.b.certificate.password': false });
  assert.equal(slotNeeded(secretSlots({ connections: { c: { tenantId: 't' } } })[0]!), true);
  // Listener passwords sit in a list; the IMAP login in a union with 'xoauth2'.
  const watch = {
    notify: {
      watch: {
        groups: {
          plant: { kind: 'ews', listeners: [{ connection: 'x' }, { username: 'svc', password: 'enc:v1:abc' }], mailboxes: ['a@b.c'] },
          dove: { kind: 'imap', imap: { auth: { user: 'm', password: 'pw' } }, listeners: [{ username: 'u', password: 'p2' }], mailboxes: ['a@b.d'] },
          xo: { kind: 'imap', imap: { auth: 'xoauth2' }, listeners: [{ connection: 'x' }], mailboxes: ['a@b.e'] },
        },
      },
    },
  };
  assert.deepEqual(
    secretSlots(watch).map((s) => [s.path, s.value]),
    [
      ['notify.watch.groups.plant.listeners.0.password', undefined],
      ['notify.watch.groups.plant.listeners.1.password', 'enc:v1:abc'],
      ['notify.watch.groups.dove.imap.auth.password', 'pw'],
      ['notify.watch.groups.dove.listeners.0.password', 'p2'],
      ['notify.watch.groups.xo.listeners.0.password', undefined],
    ],
  );
  const r = resolvePath(['notify', 'watch', 'groups', 'PLANT', 'listeners', '1', 'PASSWORD'], watch);
  assert.ok(r.ok && r.segments.join('.') === 'notify.watch.groups.plant.listeners.1.password');
  assert.ok(!resolvePath(['notify', 'watch', 'groups', 'plant', 'listeners', '2', 'password'], watch).ok);
  assert.deepEqual(
    secretSlots({ store: { driver: 'sqlite' } }).map((s) => s.path),
    [],
  );
});

test('paths resolve case-insensitively to the schema spelling; connection names to the file spelling', () => {
  const raw = { connections: { Contoso: {} } };
  const r = resolvePath(['CONNECTIONS', 'contoso', 'CERTIFICATE', 'password'], raw);
  assert.ok(r.ok);
  assert.deepEqual(r.segments, ['connections', 'Contoso', 'certificate', 'password']);
  const fresh = resolvePath(['CONNECTIONS', 'FABRIKAM', 'TENANTID'], raw, { foldNewNames: true });
  assert.ok(fresh.ok && fresh.segments[1] === 'fabrikam');
  const bad = resolvePath(['server', 'prot'], raw);
  assert.ok(!bad.ok && bad.reason === 'unknown' && bad.known.includes('port'));
  // union sections: keys of the selected driver first, of any driver otherwise
  const url = resolvePath(['store', 'URL'], { store: { driver: 'postgres' } });
  assert.ok(url.ok && url.segments.join('.') === 'store.url');
});

test('closest: typos, case, separators; nothing for unrelated words', () => {
  const keys = ['tenantId', 'clientId', 'clientSecret', 'clientSecretExpires', 'certificate'];
  assert.equal(closest('tenantID', keys), 'tenantId');
  assert.equal(closest('client_secret', keys), 'clientSecret');
  assert.equal(closest('clientScret', keys), 'clientSecret');
  assert.equal(closest('certifcate', keys), 'certificate');
  assert.equal(closest('bananas', keys), undefined);
});

test('secret set refuses settings that are not secret, listing the secret ones', () => {
  assert.deepEqual(secretPathFor('Connections.contoso.ClientSecret', {}), ['connections', 'contoso', 'clientSecret']);
  for (const path of ['connections.contoso.tenantId', 'server.port', 'nonsense', 'connections.contoso']) {
    assert.throws(() => secretPathFor(path, {}), (err: unknown) => {
      assert.ok(err instanceof MbError);
      assert.equal(err.code, 'MB_SECRET_NOT_A_SECRET');
      assert.match(err.explain('en').fix, /connections\.<name>\.clientSecret/);
      assert.match(err.explain('de').fix, /store\.url/);
      return true;
    });
  }
  assert.throws(() => secretPathFor('connections.bad name.clientSecret', {}), { code: 'MB_CONFIG_BAD_NAME' });
});

test('secrets kept in a map (notify.api.keys.<name>) are slots one by one', () => {
  const slots = secretSlots({ notify: { api: { keys: { mdm: 'enc:v1:abc', crm: 'plain' } } } });
  assert.deepEqual(
    slots.filter((s) => s.path.startsWith('notify.api.keys.')).map((s) => [s.path, s.value]),
    [
      ['notify.api.keys.mdm', 'enc:v1:abc'],
      ['notify.api.keys.crm', 'plain'],
    ],
  );
});
