/**
 * Every password, key and token of mailbridge.yaml is a secret field (config/secret-field.ts): the
 * schema is walked whole, and any field whose name or description speaks of a password, secret,
 * key or token must be one — unless it is listed below with the reason it is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { schemaFields } from '../../src/app/config.ts';

const SECRET_WORDS = /pass(word)?|secret|key|token/i;

/** Fields that speak of secrets without holding one, each with the reason. */
const NOT_SECRETS: Record<string, string> = {
  'secrets.keyFile': 'the path of the key file, not the key',
  'connections.<name>.clientSecretExpires': 'the expiry date of the client secret',
  'connections.<name>.certificate.path': 'a path to the certificate file (its password is the secret)',
  'connections.<name>.certificate.privateKeyPath': 'a path to the private key file',
  'connections.<name>.account': 'the UPN whose tokens are used',
  'connections.<name>.tokenEndpoint': 'a public URL template',
  'connections.<name>.graceSeconds': 'a number of seconds before a token expires',
  'relay.listeners.<n>.allowPlainAuth': 'a switch about how passwords may travel',
  'relay.tls.keyPath': 'a path to the TLS key file',
  'server.tls.key': 'a path to the TLS key file',
  'server.insecure': 'a switch; the description warns that passwords and keys would cross in clear',
  'api.users.<name>.password': 'a one-way scrypt hash written by `api user set`, verifiable only, never revealed',
  'relay.users.<name>.passwordHash': 'a one-way scrypt hash printed by `relay-user`, verifiable only, never revealed',
  'relay.routes.<n>.connection': 'the name of a connection whose token is used',
  'connectors.<name>.connection': 'the name of a connection whose tokens are used',
  'connectors.<name>.source.notifications.listen.keyFile': 'a path to the TLS key file',
  'notify.webpush.vapid.publicKey': 'the public half, which browsers are given',
  'notify.apns.keyId': 'the public ID of the .p8 key',
  'notify.watch.listen.keyFile': 'a path to the TLS key file',
  'notify.watch.groups.<name>.listeners.<n>.connection': 'the name of a connection whose tokens are used',
  'notify.watch.groups.<name>.ews.impersonation': 'a switch; the description mentions tokens',
  'notify.watch.groups.<name>.ews.authentication': 'the scheme (ntlm or basic) the listener password signs in with',
};

const CONTAINERS = new Set(['object', 'record', 'array', 'union']);

test('every field that speaks of a password, secret, key or token is a secret field (or a listed exception)', () => {
  const fields = schemaFields().filter((f) => !CONTAINERS.has(f.type));
  const suspicious = fields.filter((f) => SECRET_WORDS.test(f.key) || SECRET_WORDS.test(f.description));
  const offending = suspicious.filter((f) => !f.secret && !(f.path in NOT_SECRETS)).map((f) => `${f.path} (${f.description || 'no description'})`);
  assert.deepEqual(offending, [], 'declare these with secretField() from src/config/secret-field.ts, or list them in NOT_SECRETS with a reason');
  // The exceptions stay honest: each still exists, still looks like a secret, and is not one.
  for (const path of Object.keys(NOT_SECRETS)) {
    const f = fields.find((x) => x.path === path);
    assert.ok(f, `exception ${path} names no field any more`);
    assert.ok(SECRET_WORDS.test(f.key) || SECRET_WORDS.test(f.description), `exception ${path} no longer needs listing`);
    assert.equal(f.secret, false, `${path} is a secret field now; remove the exception`);
  }
  // What the issue names: listener passwords, APNs and FCM keys, signing secrets, API keys, the store URL.
  const secrets = new Set(fields.filter((f) => f.secret).map((f) => f.path));
  for (const p of [
    'notify.watch.groups.<name>.listeners.<n>.password',
    'notify.watch.groups.<name>.imap.auth.password',
    'notify.apns.privateKey',
    'notify.fcm.serviceAccount',
    'connectors.<name>.destination.secret',
    'notify.api.keys.<name>',
    'store.url',
  ]) {
    assert.ok(secrets.has(p), `${p} is not a secret field`);
  }
});

test('the secret mark is set in one place: capability schemas use secretField, none marks its own', () => {
  const src = new URL('../../src/', import.meta.url).pathname;
  const own: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('config/secret-field.ts') && !p.includes('/sandbox/') && /meta\(\{[^)]*secret:\s*true/.test(readFileSync(p, 'utf8'))) own.push(p.slice(src.length));
    }
  };
  walk(src);
  assert.deepEqual(own, []);
});
