/**
 * The console editor's file view and its way back (config/masked.ts maskedFileText, secret-file.ts
 * resolveMasks) on shapes the API test does not write: a multi-line secret in a block scalar (an
 * APNs .p8 key), a secret in a flow map, a secret in a list item, a postgres URL. Each is masked
 * whole; sent back, each mask takes the file's value again, and the file reads back as the same
 * configuration; a clear secret typed in is sealed with the installation's key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { resolveMasks } from '../../src/app/config.ts';
import { configSchema } from '../../src/app/schema.ts';
import { maskedFileText } from '../../src/config/masked.ts';
import { openSecretBox } from '../../src/config/secrets.ts';
import { MASK } from '../../src/log/redact.ts';
import { tempDir } from '../support/temp.ts';

test('block-scalar, flow-map and list-item secrets are masked whole and come back as the file has them; a typed one is sealed', async (t) => {
  const dir = tempDir('mb-masked-file-', t);
  const file = join(dir.path, 'mailbridge.yaml');
  const box = await openSecretBox({ keyFile: join(dir.path, 'mailbridge.key'), env: {} });
  const pemBody = randomBytes(48).toString('base64');
  const listenerPassword = `listen-${randomBytes(8).toString('hex')}`;
  const dbPassword = `db${randomBytes(8).toString('hex')}`;
  const sealedKey = box.seal(`key-${randomBytes(16).toString('hex')}`);
  const text = [
    '# the notify part',
    'store: { driver: postgres, url: "postgres://mb:' + dbPassword + '@db.intern/mb" }',
    'api:',
    `  keys: { ops: { key: ${sealedKey}, scopes: [admin] } }`,
    'notify:',
    '  apns:',
    '    teamId: ABCDE12345',
    '    keyId: FGHIJ67890',
    '    privateKey: |',
    '      -----BEGIN PRIVATE KEY-----',
    `      ${pemBody}`,
    '      -----END PRIVATE KEY-----',
    '    topic: com.contoso.mail',
    '  watch:',
    '    groups:',
    '      plant:',
    '        kind: imap',
    '        connection: contoso',
    '        mailboxes: [scans@contoso.test]',
    '        listeners:',
    `          - { host: 127.0.0.1, port: 993, user: watcher, password: ${listenerPassword} }`,
    '',
  ].join('\n');
  writeFileSync(file, text, { mode: 0o600 });

  const shown = maskedFileText(configSchema, text);
  for (const hidden of [pemBody, 'PRIVATE KEY', listenerPassword, dbPassword, sealedKey]) assert.equal(shown.includes(hidden), false, `${hidden.slice(0, 8)}… shown`);
  assert.match(shown, /^# the notify part$/m);
  const view = parse(shown) as { store: { url: string }; api: { keys: { ops: { key: string } } }; notify: { apns: { privateKey: string } } };
  assert.deepEqual([view.store.url, view.api.keys.ops.key, view.notify.apns.privateKey], [MASK, MASK, MASK]);

  const back = await resolveMasks(file, shown, {}, { seal: true });
  assert.deepEqual(back.unresolved, []);
  assert.deepEqual(parse(back.text), parse(text), 'the same configuration as the file');

  const typed = `typed-${randomBytes(16).toString('hex')}`;
  // The block stays a block, its content the mask: a new key is typed (or pasted) in its place.
  assert.match(shown, /^ {4}privateKey: \|-?\n {6}\*{8}\n {4}topic:/m);
  const edited = await resolveMasks(file, shown.replace(/^( {6})\*{8}$/m, `$1${typed}`), {}, { seal: true });
  assert.deepEqual([edited.typed, edited.sealed], [['notify.apns.privateKey'], true]);
  const stored = (parse(edited.text) as { notify: { apns: { privateKey: string } } }).notify.apns.privateKey;
  assert.equal(box.reveal(stored), typed);
  assert.equal(edited.text.includes(typed), false);
});
