/**
 * `mailbridge status` as a child process: the nodes that reported to the store (a live one with
 * what it owns, one whose heartbeat stopped), in English, German and JSON.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../../src/store/index.ts';
import { runCli } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'mb-status-cli-'));
const cfg = join(dir, 'mailbridge.yaml');
let store: Store;
/** When set, the time the store stamps heartbeats with (a node whose heartbeat stopped is one stamped in the past). */
let at: number | undefined;

before(async () => {
  writeFileSync(cfg, JSON.stringify({ store: { driver: 'sqlite', path: join(dir, 'mb.db') } }));
  store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') }, { clock: () => at ?? Date.now() });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('no node yet: says so', async () => {
  const r = await runCli(['--config', cfg, 'status']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Store: sqlite; 0 node\(s\) live, 0 stopped/);
  assert.match(r.stdout, /No node has reported: is mailbridge serve running\?/);
});

test('nodes with version, role, uptime, state and what they own (English, German, JSON)', async () => {
  const now = Date.now();
  at = now;
  await store.cluster.heartbeat({ id: 'mb1-0a0b0c0d', name: 'mb1', version: '0.1.0', role: 'serve', startedAt: now - 3_725_000, owns: { 'watch:sales': 4 } });
  at = now - 120_000;
  await store.cluster.heartbeat({ id: 'mb2-01020304', name: 'mb2', version: '0.1.0', role: 'fetch erp', startedAt: now - 600_000, owns: { 'connector:erp': 0 } });
  at = undefined;
  const en = await runCli(['--config', cfg, 'status']);
  assert.equal(en.code, 0, en.stderr);
  assert.match(en.stdout, /Store: sqlite; 1 node\(s\) live, 1 stopped/);
  assert.match(en.stdout, /^mb1\s+mb1-0a0b0c0d\s+0\.1\.0\s+serve\s+1h 02m\s+live\s+watch:sales 4$/m);
  assert.match(en.stdout, /^mb2\s+mb2-01020304\s+0\.1\.0\s+fetch erp\s+8m 00s\s+stopped \(last seen \d{4}-\d\d-\d\dT[\d:.]+Z\)\s+connector:erp 0$/m);

  const de = await runCli(['--config', cfg, '--lang', 'de', 'status']);
  assert.match(de.stdout, /Speicher: sqlite; 1 Knoten aktiv, 1 gestoppt/);
  assert.match(de.stdout, /^NAME\s+ID\s+VERSION\s+ROLLE\s+LAUFZEIT\s+ZUSTAND\s+BESITZT$/m);
  assert.match(de.stdout, /mb1-0a0b0c0d.*\saktiv\s/);
  assert.match(de.stdout, /gestoppt \(zuletzt /);

  const json = await runCli(['--config', cfg, 'status', '--json']);
  const body = JSON.parse(json.stdout) as { store: string; nodes: Array<{ id: string; live: boolean; owns: Record<string, number>; uptimeSeconds: number }> };
  assert.equal(body.store, 'sqlite');
  assert.deepEqual(body.nodes.map((n) => [n.id, n.live, n.owns, n.uptimeSeconds]), [
    ['mb1-0a0b0c0d', true, { 'watch:sales': 4 }, 3725],
    ['mb2-01020304', false, { 'connector:erp': 0 }, 480],
  ]);
});
