/**
 * `mailbridge api user set`: the password from stdin becomes a scrypt hash under api.users.<name>
 * in mailbridge.yaml (comments kept, the password nowhere: not in the file, not in the output),
 * the file is a valid configuration afterwards, a new user needs --role, a changed password keeps
 * the role and ends the user's open console sessions; help in English and German.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../../src/app/config.ts';
import { Sessions } from '../../../src/api/session.ts';
import { openStore } from '../../../src/store/index.ts';
import { parsePasswordHash, verifyPassword } from '../../../src/util/password.ts';
import { runCli } from './harness.ts';
import { tempDir } from '../../support/temp.ts';

test('api user set writes the hash and role into mailbridge.yaml, keeps the rest, ends sessions on a new password', async (t) => {
  const dir = tempDir('mb-cli-api-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  const db = join(dir, 'mb.db');
  writeFileSync(file, `# our gateway\nserver:\n  port: 8080   # the console\nstore:\n  driver: sqlite\n  path: ${db}\n`);
  const password = 'Konsole-Kennwort-2026';
  const r = await runCli(['--config', file, 'api', 'user', 'set', 'ada', '--role', 'admin'], { input: `${password}\n` });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes(password) && !r.stderr.includes(password), 'the password in the output');
  assert.match(r.stdout, /api\.users\.ada \(admin\) added/);
  const text = readFileSync(file, 'utf8');
  assert.ok(!text.includes(password));
  assert.match(text, /^# our gateway\n/);
  assert.match(text, /port: 8080 {3}# the console/);
  const { config } = await loadConfig(file, {});
  const ada = config.api?.users.ada;
  assert.equal(ada?.role, 'admin');
  assert.equal(await verifyPassword(password, parsePasswordHash(ada!.password)!), true);

  // A new user without --role, a wrong role, a short password: usage errors, nothing written.
  const noRole = await runCli(['--config', file, 'api', 'user', 'set', 'otto'], { input: `${password}\n` });
  assert.equal(noRole.code, 2);
  assert.match(noRole.stderr, /MB_CLI_USAGE/);
  assert.match(noRole.stderr, /--role/);
  assert.match((await runCli(['--config', file, 'api', 'user', 'set', 'otto', '--role', 'root'], { input: `${password}\n` })).stderr, /reader, operator or admin/);
  assert.equal((await runCli(['--config', file, 'api', 'user', 'set', 'otto', '--role', 'reader'], { input: 'short\n' })).code, 2);
  assert.equal(readFileSync(file, 'utf8'), text);

  // Two open sessions of ada; a new password keeps the role and ends them.
  const store = await openStore({ driver: 'sqlite', path: db });
  const sessions = new Sessions(store.kv, { idleMinutes: 30, maxHours: 12 });
  const s1 = await sessions.create('ada', 'admin', 'local');
  await sessions.create('ada', 'admin', 'local');
  const other = await sessions.create('otto', 'reader', 'local');
  await store.close();
  const changed = await runCli(['--lang', 'de', '--config', file, 'api', 'user', 'set', 'ada'], { input: 'Ein-neues-Kennwort-7\n' });
  assert.equal(changed.code, 0, changed.stderr);
  assert.match(changed.stdout, /api\.users\.ada \(admin\) in .* geändert/);
  assert.match(changed.stdout, /2 offene Konsolensitzung\(en\) von ada beendet/);
  const after = await loadConfig(file, {});
  assert.equal(await verifyPassword('Ein-neues-Kennwort-7', parsePasswordHash(after.config.api!.users.ada!.password)!), true);
  const reopened = await openStore({ driver: 'sqlite', path: db });
  try {
    const again = new Sessions(reopened.kv, { idleMinutes: 30, maxHours: 12 });
    assert.equal(await again.get(s1.id), undefined);
    assert.equal((await again.get(other.id))?.user, 'otto', 'other users keep theirs');
  } finally {
    await reopened.close();
  }

  assert.match((await runCli(['api', '--help'])).stdout, /Usage: mailbridge api user set <name>/);
  assert.match((await runCli(['--lang', 'de', 'api', '--help'])).stdout, /Aufruf: mailbridge api user set <name>/);
});
