/**
 * `mailbridge send` end to end, as an admin runs it (a child process of the CLI against the whole
 * sandbox): each step is reported and the mail with its attachment arrives; over Graph with --via;
 * with SMTP AUTH switched off for the tenant the failing step shows the MB code and the
 * Set-TransportConfig line (in German with --lang de), exit code 1; secrets never show.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTenantSmtpAuthDisabled } from '../../src/sandbox/exchange/ops.ts';
import { startFullSandbox, type FullSandbox } from '../relay/transports/full-sandbox.ts';
import { ROOT } from '../relay/transports/rig.ts';

const run = promisify(execFile);
let s: FullSandbox;
let config: string;

before(async () => {
  s = await startFullSandbox();
  config = s.writeConfig('mailbridge-send.yaml', {
    relay: {
      dataDir: join(s.dir, 'relay'),
      routes: [{ name: 'contoso', senders: ['@contoso.test'], connection: 'sandbox', mailbox: 'scanner@contoso.test', smtp: { host: '127.0.0.1', port: s.sandbox.smtp.port }, graph: { url: s.graph.url } }],
    },
  });
});

after(async () => {
  await s?.close();
});

async function mailbridge(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(join(ROOT, 'node_modules', '.bin', 'node'), [join(ROOT, 'src', 'admin', 'cli', 'main.ts'), '--config', config, ...args], {
      env: { PATH: process.env.PATH ?? '', LANG: 'C' },
      cwd: s.dir,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('send over SMTP: every step reported, the mail and its attachment arrive', async () => {
  const file = join(s.dir, 'report.csv');
  writeFileSync(file, 'a;b\n1;2\n');
  const out = await mailbridge('send', '--from', 'scanner@contoso.test', '--to', 'alice@contoso.test', '--bcc', 'bob@contoso.test', '--subject', 'send test 1', '--attach', file);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  for (const step of ['route', 'token', 'connect', 'auth', 'send', 'accept']) assert.match(out.stdout, new RegExp(`^✔ ${step} `, 'm'), `step ${step}`);
  assert.match(out.stdout, /^✔ auth\s+AUTH XOAUTH2 as scanner@contoso\.test/m);
  assert.match(out.stdout, /^✔ accept\s+250 2\.0\.0 OK/m);
  assert.match(out.stdout, /Microsoft 365 accepted the message\./);
  const secret = s.sandbox.directory.data.tenants[0]!.apps[0]!.secrets[0]!.value;
  assert.ok(!out.stdout.includes(secret) && !out.stderr.includes(secret), 'no secret in the output');
  const got = (await s.inbox('alice@contoso.test')).map(String).find((m) => m.includes('Subject: send test 1'));
  assert.ok(got, 'alice got it');
  assert.match(got, /filename=report\.csv/);
  assert.ok((await s.inbox('bob@contoso.test')).some((m) => m.includes('Subject: send test 1')), 'the --bcc recipient got it');
});

test('send --via graph --json: the steps and the 202 as JSON', async () => {
  const out = await mailbridge('send', '--from', 'scanner@contoso.test', '--to', 'bob@contoso.test', '--subject', 'send test graph', '--via', 'graph', '--json');
  assert.equal(out.code, 0, out.stdout + out.stderr);
  const result = JSON.parse(out.stdout) as { ok: boolean; steps: Array<{ step: string; ok: boolean }>; reply: string };
  assert.equal(result.ok, true);
  assert.deepEqual(result.steps.map((x) => x.step), ['route', 'token', 'send', 'accept']);
  assert.match(result.reply, /^HTTP 202 Accepted/);
  assert.ok((await s.inbox('bob@contoso.test')).some((m) => m.includes('Subject: send test graph')));
});

test('SMTP AUTH off for the tenant: the auth step fails with MB_RELAY_SMTP_AUTH_DISABLED_TENANT and the fix, exit 1 (and in German)', async () => {
  setTenantSmtpAuthDisabled(s.sandbox.directory, s.sandbox.directory.data.tenants[0]!.id, true);
  try {
    const out = await mailbridge('send', '--from', 'scanner@contoso.test', '--to', 'alice@contoso.test', '--subject', 'send test off');
    assert.equal(out.code, 1);
    assert.match(out.stdout, /^✔ token /m);
    assert.match(out.stdout, /^✔ connect /m);
    assert.match(out.stdout, /^✖ auth\s+535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant/m);
    assert.match(out.stdout, /MB_RELAY_SMTP_AUTH_DISABLED_TENANT: SMTP AUTH is disabled for the organization/);
    assert.match(out.stdout, /Set-TransportConfig -SmtpClientAuthenticationDisabled \$false/);
    assert.match(out.stdout, /The relay would defer this message and try again\./);
    // send bypasses the queue: no text may say the message stays in it.
    assert.doesNotMatch(out.stdout, /stays in the queue|is retried/);

    const de = await mailbridge('--lang', 'de', 'send', '--from', 'scanner@contoso.test', '--to', 'alice@contoso.test');
    assert.equal(de.code, 1);
    assert.match(de.stdout, /^✖ Anmeldung\s+535 5\.7\.139/m);
    assert.match(de.stdout, /Behebung: Nur für dieses Postfach erlauben \(empfohlen\): Set-CASMailbox -Identity scanner@contoso\.test/);
    assert.doesNotMatch(de.stdout, /Warteschlange/);
    // The step details are German too (what Exchange answered stays in its words).
    assert.match(de.stdout, /^✔ Route\s+Route \S+: smtp über Verbindung \S+ als scanner@contoso\.test/m);
    assert.match(de.stdout, /^✔ Token\s+\S+: nur App(, aus dem Cache)?, gültig bis \d{4}-/m);
    const mine = de.stdout.split('\n').filter((l) => /^[✔✖] /.test(l) && !/^✖ Anmeldung/.test(l));
    assert.ok(mine.length >= 3, de.stdout);
    for (const l of mine) assert.doesNotMatch(l, /\b(via|connection|valid until|cached|app-only|bytes|as)\b/, l);
  } finally {
    setTenantSmtpAuthDisabled(s.sandbox.directory, s.sandbox.directory.data.tenants[0]!.id, false);
  }
  assert.equal((await s.inbox('alice@contoso.test')).filter((m) => m.includes('Subject: send test off')).length, 0);
});

test('usage errors and a sender without a route are explained', async () => {
  const usage = await mailbridge('send', '--to', 'alice@contoso.test');
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--from and --to are required/);
  const noRoute = await mailbridge('send', '--from', 'someone@elsewhere.example', '--to', 'alice@contoso.test');
  assert.equal(noRoute.code, 1);
  assert.match(noRoute.stdout, /^✖ route /m);
  assert.match(noRoute.stdout, /MB_RELAY_NO_ROUTE/);
  const help = await mailbridge('send', '--help');
  assert.match(help.stdout, /Usage: mailbridge send --from ADDRESS --to ADDRESS/);
});
