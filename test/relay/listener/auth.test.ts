import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { LoginGuard } from '../../../src/relay/auth.ts';
import { hashPassword, parsePasswordHash, verifyPassword } from '../../../src/relay/password.ts';
import { ManualClock, PASSWORD, RawSmtp, startTestRelay, testUser } from '../helpers/index.ts';

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

function client(port: number, cert: string, user: string, pass: string, authMethod: 'PLAIN' | 'LOGIN') {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    requireTLS: true,
    auth: { user, pass },
    authMethod,
    tls: { ca: cert, servername: 'localhost' },
  });
}

test('password hashes: scrypt PHC strings, verified in constant time, wrong passwords refused', async () => {
  const h = await hashPassword('Sommer2026!Sommer', 10);
  assert.match(h, /^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  const parsed = parsePasswordHash(h)!;
  assert.equal(await verifyPassword('Sommer2026!Sommer', parsed), true);
  assert.equal(await verifyPassword('Sommer2026!SommeR', parsed), false);
  assert.notEqual(await hashPassword('Sommer2026!Sommer', 10), h, 'a new salt each time');
  assert.equal(parsePasswordHash('$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$' + 'A'.repeat(43)), undefined, 'absurd cost refused');
  assert.equal(parsePasswordHash('plaintext'), undefined);
});

test('AUTH PLAIN and LOGIN: the right password is accepted, a wrong one or an unknown user gets 535 5.7.8 and an MB-coded log line', async () => {
  const t = await startTestRelay({
    config: { users: { app: await testUser(['scanner@contoso.com']) }, authBackoff: { baseDelayMs: 1, maxDelayMs: 2 } },
  });
  try {
    for (const method of ['PLAIN', 'LOGIN'] as const) {
      const ok = await client(t.port, t.relay.tls.cert, 'app', PASSWORD, method).sendMail({ from: 'scanner@contoso.com', to: 'a@example.com', text: method });
      assert.match(ok.response, /^250 /, method);
      for (const [user, pass] of [['app', 'wrong-password-123'], ['nobody', PASSWORD]]) {
        await assert.rejects(
          client(t.port, t.relay.tls.cert, user!, pass!, method).sendMail({ from: 'scanner@contoso.com', to: 'a@example.com', text: 'x' }),
          (err: { responseCode?: number; response?: string }) => {
            assert.equal(err.responseCode, 535, `${method} ${user}`);
            assert.match(err.response ?? '', /^535 5\.7\.8 Authentication credentials invalid/);
            return true;
          },
        );
      }
    }
    const failures = t.lines.filter((l) => l.mb === 'MB_RELAY_AUTH_FAILED');
    assert.equal(failures.length, 4);
    assert.deepEqual(new Set(failures.map((l) => l.reason)), new Set(['wrong password', 'unknown user']));
    assert.ok(failures.every((l) => l.ip === '127.0.0.1'));
    const all = JSON.stringify(t.lines);
    assert.ok(!all.includes('wrong-password-123') && !all.includes(PASSWORD), 'no password in the log');
    await t.transport.delivered(2);
  } finally {
    await t.close();
  }
});

test('AUTH needs TLS unless the listener allows plain AUTH; a listener without TLS and without plain AUTH does not offer it', async () => {
  const t = await startTestRelay({
    config: {
      listeners: [
        { host: '127.0.0.1', port: 0, tls: 'starttls' },
        { host: '127.0.0.1', port: 0, tls: 'none' },
      ],
      users: { app: await testUser(['scanner@contoso.com']) },
    },
  });
  try {
    const a = await RawSmtp.open(t.relay.listeners[0]!.port);
    const ehlo = await a.cmd('EHLO app.test');
    assert.match(ehlo!, /STARTTLS/);
    assert.match(await a.cmd(`AUTH PLAIN ${plain('app', PASSWORD)}`) ?? '', /^538 5\.7\.\d+ /);
    a.close();
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_TLS_REQUIRED' && l.ip === '127.0.0.1'));

    const b = await RawSmtp.open(t.relay.listeners[1]!.port);
    const ehloB = await b.cmd('EHLO app.test');
    assert.doesNotMatch(ehloB!, /AUTH|STARTTLS/);
    assert.match(await b.cmd(`AUTH PLAIN ${plain('app', PASSWORD)}`) ?? '', /^5\d\d /);
    b.close();
  } finally {
    await t.close();
  }
});

test('back-off: failures delay growing replies; after maxFailures the connection gets 421 4.7.0 and the address 454 4.7.0 until the lock ends', async () => {
  const clock = new ManualClock();
  const t = await startTestRelay({
    clock,
    config: {
      listeners: [{ host: '127.0.0.1', port: 0, tls: 'none', allowPlainAuth: true }],
      users: { app: await testUser(['scanner@contoso.com']) },
      authBackoff: { maxFailures: 3, windowSeconds: 600, lockSeconds: 60, baseDelayMs: 1, maxDelayMs: 4 },
    },
  });
  try {
    const c = await RawSmtp.open(t.port);
    await c.cmd('EHLO app.test');
    assert.match(await c.cmd(`AUTH PLAIN ${plain('app', 'guess-1')}`) ?? '', /^535 5\.7\.8/);
    assert.match(await c.cmd(`AUTH PLAIN ${plain('app', 'guess-2')}`) ?? '', /^535 5\.7\.8/);
    assert.match(await c.cmd(`AUTH PLAIN ${plain('app', 'guess-3')}`) ?? '', /^421 4\.7\.0 Too many failed logins/);
    assert.equal(await c.reply(), undefined, 'the connection is closed after 421');

    // A new connection from the same address is refused even with the right password.
    const d = await RawSmtp.open(t.port);
    await d.cmd('EHLO app.test');
    assert.match(await d.cmd(`AUTH PLAIN ${plain('app', PASSWORD)}`) ?? '', /^454 4\.7\.0 Too many failed logins from 127\.0\.0\.1; try again in 60 s/);
    clock.advance(61_000);
    assert.match(await d.cmd(`AUTH PLAIN ${plain('app', PASSWORD)}`) ?? '', /^235 /);
    d.close();
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_AUTH_LOCKED' && l.ip === '127.0.0.1'));
  } finally {
    await t.close();
  }
});

test('LoginGuard: the delay doubles up to its cap, failures outside the window are forgotten', () => {
  const clock = new ManualClock();
  const g = new LoginGuard({ maxFailures: 5, windowMs: 60_000, lockMs: 300_000, baseDelayMs: 500, maxDelayMs: 3_000 }, clock);
  assert.deepEqual([1, 2, 3, 4].map(() => g.failure('192.0.2.1').delayMs), [500, 1000, 2000, 3000]);
  assert.equal(g.lockedFor('192.0.2.1'), 0);
  const locked = g.failure('192.0.2.1');
  assert.equal(locked.locked, true);
  assert.equal(g.lockedFor('192.0.2.1'), 300_000);
  assert.equal(g.lockedFor('192.0.2.2'), 0, 'other addresses are not affected');
  clock.advance(300_000);
  assert.equal(g.lockedFor('192.0.2.1'), 0);
  g.failure('198.51.100.7');
  clock.advance(61_000);
  assert.equal(g.failure('198.51.100.7').failures, 1, 'the old failure left the window');
});

test('per-user rules: allowedIps limits where a user may log in; a disabled user cannot log in; senders are checked per user', async () => {
  const t = await startTestRelay({
    config: {
      users: {
        lan: await testUser(['@contoso.com'], { allowedIps: ['10.0.0.0/8', 'fd00::/8'] }),
        old: await testUser(['@contoso.com'], { disabled: true }),
        app: await testUser(['scanner@contoso.com', '@fabrikam.example']),
      },
      authBackoff: { baseDelayMs: 1, maxDelayMs: 2, maxFailures: 100 },
    },
  });
  try {
    for (const user of ['lan', 'old']) {
      await assert.rejects(client(t.port, t.relay.tls.cert, user, PASSWORD, 'PLAIN').sendMail({ from: 'x@contoso.com', to: 'a@example.com', text: 'x' }), {
        responseCode: 535,
      });
    }
    const reasons = t.lines.filter((l) => l.mb === 'MB_RELAY_AUTH_FAILED').map((l) => l.reason);
    assert.ok(reasons.some((r) => String(r).includes('allowedIps')));
    assert.ok(reasons.includes('user disabled'));

    const app = client(t.port, t.relay.tls.cert, 'app', PASSWORD, 'PLAIN');
    for (const from of ['scanner@contoso.com', 'SCANNER@Contoso.COM', 'anyone@fabrikam.example']) {
      assert.match((await app.sendMail({ from, to: 'a@example.com', text: 'ok' })).response, /^250 /, from);
    }
    for (const from of ['other@contoso.com', 'scanner@contoso.com.evil.example', 'x@sub.fabrikam.example']) {
      await assert.rejects(app.sendMail({ from, to: 'a@example.com', text: 'no' }), (err: { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 550, from);
        assert.match(err.response ?? '', /^550 5\.7\.1 Sender address <.+> not allowed for user:app$/);
        return true;
      });
    }
    assert.equal(t.lines.filter((l) => l.mb === 'MB_RELAY_SENDER_DENIED').length, 3);
    await t.transport.delivered(3);
    assert.equal(t.transport.deliveries.length, 3);
  } finally {
    await t.close();
  }
});
