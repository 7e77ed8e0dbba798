import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../../src/log/index.ts';
import { relaySchema } from '../../../src/relay/config.ts';
import { openQueue } from '../../../src/relay/index.ts';
import { parsePasswordHash, verifyPassword } from '../../../src/util/password.ts';
import { openStore } from '../../../src/store/index.ts';
import { enqueue } from '../helpers/queue.ts';
import { tempDir } from '../../support/temp.ts';

const MAIN = new URL('../../../src/admin/cli/main.ts', import.meta.url).pathname;

function cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, LANG: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(input ?? '');
  return once(child, 'exit').then(([code]) => ({ code: code as number, stdout, stderr }));
}

test('mailbridge queue: list, show (with the last error explained in en/de), hold, release, retry, delete', async () => {
  const dir = tempDir('mb-cli-');
  try {
    const dbPath = join(dir.path, 'mb.db');
    const dataDir = join(dir.path, 'relay');
    const configPath = join(dir.path, 'mailbridge.yaml');
    writeFileSync(configPath, `store:\n  driver: sqlite\n  path: ${dbPath}\nrelay:\n  dataDir: ${dataDir}\n`);

    const store = await openStore({ driver: 'sqlite', path: dbPath });
    const queue = await openQueue({ config: relaySchema.parse({ dataDir }), store, log: silentLogger });
    const a = await enqueue(queue, { sender: 'erp@contoso.com', recipients: ['kunde@example.com', 'archiv@example.org'] });
    const b = await enqueue(queue, { sender: 'dms@contoso.com' });
    const c = await enqueue(queue, { sender: 'scan@contoso.com' });
    await queue.failed((await queue.claim(b.id))!, {
      kind: 'temporary',
      mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY',
      params: { detail: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded' },
      code: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded',
      detail: 'sender thread limit exceeded',
    });
    await queue.claim(c.id); // in delivery
    await store.close();

    const list = await cli(['--config', configPath, 'queue', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${a.id}\\s+incoming .* erp@contoso\\.com → 2 recipients`));
    assert.match(list.stdout, new RegExp(`${b.id}\\s+deferred .* MB_RELAY_UPSTREAM_TEMPORARY`));
    assert.match(list.stdout, /incoming: 1, active: 1, deferred: 1, held: 0, sent: 0, bounced: 0/);

    const json = JSON.parse((await cli(['--config', configPath, 'queue', 'list', '--state', 'deferred', '--json'])).stdout) as { messages: Array<{ id: string }> };
    assert.deepEqual(json.messages.map((m) => m.id), [b.id]);

    const show = await cli(['--config', configPath, 'queue', 'show', b.id]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /State\s+deferred/);
    assert.match(show.stdout, /Attempts\s+1/);
    assert.match(show.stdout, /MB_RELAY_UPSTREAM_TEMPORARY: Microsoft 365 did not accept the message yet/);
    assert.match(show.stdout, /Cause: The upstream server answered with a temporary error: 432 4\.3\.2/);
    assert.match(show.stdout, /Trace \(UTC\):\n {2}\S+ \S+ {2}accepted from 192\.0\.2\.10\n {2}\S+ \S+ {2}attempt 1: deferred \(MB_RELAY_UPSTREAM_TEMPORARY – 432 4\.3\.2 STOREDRV\.ClientSubmit; sender thread limit exceeded\)/);
    const showDe = await cli(['--lang', 'de', '--config', configPath, 'queue', 'show', b.id]);
    assert.match(showDe.stdout, /Zustand\s+verzögert/);
    assert.match(showDe.stdout, /Ursache: Der Zielserver antwortete mit einem vorübergehenden Fehler/);
    assert.match(showDe.stdout, /Verlauf \(UTC\):\n {2}\S+ \S+ {2}angenommen von 192\.0\.2\.10\n {2}\S+ \S+ {2}Versuch 1: verzögert \(MB_RELAY_UPSTREAM_TEMPORARY – 432/);

    assert.match((await cli(['--config', configPath, 'queue', 'hold', a.id])).stdout, new RegExp(`${a.id} is held`));
    const holdActive = await cli(['--config', configPath, 'queue', 'hold', c.id]);
    assert.equal(holdActive.code, 1);
    assert.match(holdActive.stderr, /MB_RELAY_QUEUE_STATE/);
    assert.match(holdActive.stderr, /is active/);
    assert.match((await cli(['--config', configPath, 'queue', 'release', a.id.toLowerCase()])).stdout, /is released/);
    assert.match((await cli(['--config', configPath, 'queue', 'retry', 'all'])).stdout, /^2 messages will be tried again now/);
    const del = await cli(['--config', configPath, 'queue', 'delete', b.id]);
    assert.equal(del.code, 0, del.stderr);
    const missing = await cli(['--config', configPath, 'queue', 'show', b.id]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /MB_RELAY_QUEUE_NOT_FOUND/);
    const usage = await cli(['--config', configPath, 'queue', 'frobnicate']);
    assert.equal(usage.code, 2);

    const after = await openStore({ driver: 'sqlite', path: dbPath });
    assert.deepEqual(await after.queue.counts(), { incoming: 0, active: 1, deferred: 1, held: 0, sent: 0, bounced: 0 });
    assert.equal((await after.queue.get(a.id))?.state, 'deferred');
    await after.close();
  } finally {
    dir.remove();
  }
});

test('mailbridge relay-user add/passwd print a verifiable scrypt hash and never the password; help in English and German', async () => {
  const password = 'Scanner-Passwort-2026';
  const add = await cli(['relay-user', 'add', 'scanner', '--sender', 'scan@contoso.com', '--sender', '@fabrikam.example', '--ip', '10.1.2.0/24'], password + '\n');
  assert.equal(add.code, 0, add.stderr);
  assert.ok(!add.stdout.includes(password) && !add.stderr.includes(password));
  assert.match(add.stdout, /^relay:\n {2}users:\n {4}scanner:\n/m);
  assert.match(add.stdout, /- '@fabrikam\.example'/);
  assert.match(add.stdout, /allowedIps:\n {8}- '10\.1\.2\.0\/24'/);
  const hash = /passwordHash: '([^']+)'/.exec(add.stdout)![1]!;
  assert.equal(await verifyPassword(password, parsePasswordHash(hash)!), true);
  // The printed entry is valid relay configuration.
  relaySchema.parse({ users: { scanner: { passwordHash: hash, allowedSenders: ['scan@contoso.com'] } } });

  const passwd = await cli(['relay-user', 'passwd', 'scanner'], 'Ein-neues-Kennwort-42\n');
  assert.equal(passwd.code, 0, passwd.stderr);
  assert.equal(await verifyPassword('Ein-neues-Kennwort-42', parsePasswordHash(/passwordHash: '([^']+)'/.exec(passwd.stdout)![1]!)!), true);

  const short = await cli(['relay-user', 'add', 'x', '--sender', 'a@contoso.com'], 'short\n');
  assert.equal(short.code, 2);
  assert.match(short.stderr, /MB_CLI_USAGE/);
  assert.match((await cli(['relay-user', 'add', 'x', '--sender', 'not-an-address'], password + '\n')).stderr, /not an address/);

  assert.match((await cli(['relay-user', '--help'])).stdout, /Usage: mailbridge relay-user add/);
  assert.match((await cli(['--lang', 'de', 'relay-user', '--help'])).stdout, /Aufruf: mailbridge relay-user add/);
  assert.match((await cli(['--lang', 'de', 'queue', '--help'])).stdout, /Zeigt und ändert die Warteschlange/);
});
