/**
 * Notify settings that validate but would fail: `config check` reports a listener pool over
 * capacity as an error with its place in the file, and `serve` refuses it once, before anything
 * starts (it used to exit with MB_NOTIFY_POOL_FULL printed twice after config check had passed).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeText } from '../../src/app/config.ts';
import { runCli } from '../admin/cli/harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'mb-notify-check-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const yaml = `store: { driver: sqlite, path: ${join(dir, 'mb.db')} }
connections:
  c1: { tenantId: 0b7c3f3e-0000-4000-8000-000000000001, clientId: 0b7c3f3e-0000-4000-8000-000000000002, clientSecret: not-a-real-secret }
notify:
  watch:
    listen: { host: 127.0.0.1, port: 0 }
    groups:
      big:
        kind: imap
        listeners: [{ connection: c1, capacity: 2 }]
        mailboxes: [a@contoso.com, b@contoso.com, B@contoso.com, c@contoso.com]
      fits:
        kind: imap
        listeners: [{ connection: c1, name: second }]
        mailboxes: [d@contoso.com]
`;

test('config check: a pool over capacity is an error at the group\'s listeners, counted after merging repeated addresses', () => {
  const report = analyzeText(yaml, join(dir, 'mailbridge.yaml'), {});
  const pool = report.errors.filter((p) => p.code === 'MB_NOTIFY_POOL_FULL');
  assert.equal(pool.length, 1, JSON.stringify(report.errors.map((e) => e.code)));
  assert.equal(pool[0]!.path, 'notify.watch.groups.big.listeners');
  assert.equal(pool[0]!.line, 10);
  assert.deepEqual(pool[0]!.params, { group: 'big', mailboxes: 3, capacity: 2, listeners: 1, missing: 1 });
  assert.match(pool[0]!.message.de, /Die Überwachungsgruppe big hat 3 Postfächer/);
  assert.equal(report.config, undefined, 'a configuration with an error is not handed to serve');
});

test('serve refuses it once, with the fix, before it starts anything', async () => {
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(file, yaml);
  const r = await runCli(['--config', file, 'serve', '--port', '0']);
  assert.equal(r.code, 1);
  const all = r.stdout + r.stderr;
  assert.equal(all.split('The watch group big has 3 mailboxes').length - 1, 1, all);
  assert.ok(!/dispatcher started/.test(all), 'nothing was started');
});
