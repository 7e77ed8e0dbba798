/**
 * `mailbridge serve` with a connection whose app setup has yet to create (clientId: new, no
 * credential): the gateway starts, says in the admin's language how to set the connection up, and
 * serves the setup runs of the admin API; a file with any other error is refused as before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { tempDir } from '../../support/temp.ts';
import { MAIN, NODE, runCli } from './harness.ts';

const config = (dir: string, extra: Record<string, unknown> = {}) =>
  stringify({
    store: { driver: 'sqlite', path: join(dir, 'mb.db') },
    connections: { contoso: { tenantId: randomUUID(), clientId: 'new' } },
    relay: {
      dataDir: join(dir, 'relay'),
      listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
      networks: { local: { cidrs: ['127.0.0.1/32'], allowedSenders: ['erp@contoso.test'] } },
      routes: [{ name: 'erp', senders: ['erp@contoso.test'], connection: 'contoso' }],
    },
    ...extra,
  });

test('serve starts with a connection not set up yet and says how to set it up, in German too', async () => {
  const dir = tempDir('mb-serve-new-');
  const file = join(dir.path, 'mailbridge.yaml');
  writeFileSync(file, config(dir.path), { mode: 0o600 });
  const child = spawn(NODE, [MAIN, '--config', file, 'serve', '--port', '0'], { cwd: dir.path, env: { PATH: process.env.PATH, LANG: 'de_DE.UTF-8' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => /SMTP-Relay lauscht/.test(out) && resolve());
      child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}${err}`)));
    });
    assert.match(out, /Verbindung contoso ist noch nicht eingerichtet: `mailbridge setup contoso` ausführen oder die Einrichtung in der Konsole starten/);
    const url = /mailbridge läuft: (http:\/\/\S+)\/health/.exec(out)![1]!;
    // The setup runs are there for it (401: they need a key, which this file has none of).
    const runs = await fetch(`${url}/api/v1/setup/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ connection: 'contoso' }) });
    assert.equal(runs.status, 401);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    dir.remove();
  }
});

test('serve still refuses a file with any other error', async () => {
  const dir = tempDir('mb-serve-bad-');
  const file = join(dir.path, 'mailbridge.yaml');
  writeFileSync(file, config(dir.path, { server: { port: 99999 } }), { mode: 0o600 });
  try {
    const r = await runCli(['--config', file, 'serve'], { cwd: dir.path });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /server\.port/);
    assert.doesNotMatch(r.stdout, /is running/);
  } finally {
    dir.remove();
  }
});
