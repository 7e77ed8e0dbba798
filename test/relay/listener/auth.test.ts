import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { LoginGuard } from '../../../src/util/login-guard.ts';
import { hashPassword, parsePasswordHash, verifyPassword } from '../../../src/util/password.ts';
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

test('back-off over the wire: 20 parallel wrong guesses get only maxFailures checked; a success in between does not reset the count', async () => {
  const config = {
    listeners: [{ host: '127.0.0.1', port: 0, tls: 'none', allowPlainAuth: true }],
    users: { app: await testUser(['scanner@contoso.com']), other: await testUser(['scanner@contoso.com']) },
    authBackoff: { maxFailures: 5, windowSeconds: 900, lockSeconds: 900, baseDelayMs: 1, maxDelayMs: 2 },
  };
  const parallel = await startTestRelay({ config });
  try {
    const conns = await Promise.all(Array.from({ length: 20 }, () => RawSmtp.open(parallel.port)));
    await Promise.all(conns.map((c) => c.cmd('EHLO guesser.test')));
    const replies = await Promise.all(conns.map((c, i) => c.cmd(`AUTH PLAIN ${plain('app', `guess-${i}`)}`)));
    for (const c of conns) c.close();
    const checked = parallel.lines.filter((l) => l.mb === 'MB_RELAY_AUTH_FAILED');
    assert.equal(checked.length, 5, `passwords checked: ${checked.length}`);
    assert.equal(replies.filter((r) => /^(535|421) /.test(r ?? '')).length, 5);
    assert.equal(replies.filter((r) => /^454 4\.7\.0 Too many failed logins/.test(r ?? '')).length, 15, JSON.stringify(replies));
  } finally {
    await parallel.close();
  }

  const mixed = await startTestRelay({ config });
  try {
    const replies: string[] = [];
    for (let i = 0; i < 12; i++) {
      const good = await RawSmtp.open(mixed.port);
      await good.cmd('EHLO app.test');
      replies.push((await good.cmd(`AUTH PLAIN ${plain('other', PASSWORD)}`)) ?? '');
      good.close();
      const bad = await RawSmtp.open(mixed.port);
      await bad.cmd('EHLO app.test');
      replies.push((await bad.cmd(`AUTH PLAIN ${plain('app', `guess-${i}`)}`)) ?? '');
      bad.close();
    }
    assert.equal(mixed.lines.filter((l) => l.mb === 'MB_RELAY_AUTH_FAILED').length, 5, 'a success from the same address did not reset the failures');
    assert.match(replies.at(-1)!, /^454 4\.7\.0 /);
  } finally {
    await mixed.close();
  }
});

/** One login through the guard: the ticket's outcome, or the refusal. */
async function attempt(g: LoginGuard, ip: string, ok: boolean) {
  const slot = await g.acquire(ip);
  if (!('success' in slot)) return slot;
  if (ok) {
    slot.success();
    return { ok: true as const };
  }
  return slot.failure();
}

test('LoginGuard: the delay doubles up to its cap, failures outside the window are forgotten', async () => {
  const clock = new ManualClock();
  const g = new LoginGuard({ maxFailures: 5, windowMs: 60_000, lockMs: 300_000, baseDelayMs: 500, maxDelayMs: 3_000 }, clock);
  const delays = [];
  for (let i = 0; i < 4; i++) delays.push(((await attempt(g, '192.0.2.1', false)) as { delayMs: number }).delayMs);
  assert.deepEqual(delays, [500, 1000, 2000, 3000]);
  assert.equal(g.lockedFor('192.0.2.1'), 0);
  const locked = (await attempt(g, '192.0.2.1', false)) as { locked: boolean };
  assert.equal(locked.locked, true);
  assert.equal(g.lockedFor('192.0.2.1'), 300_000);
  assert.deepEqual(await g.acquire('192.0.2.1'), { lockedMs: 300_000 }, 'locked: no ticket, the password is not checked');
  assert.equal(g.lockedFor('192.0.2.2'), 0, 'other addresses are not affected');
  clock.advance(300_000);
  assert.equal(g.lockedFor('192.0.2.1'), 0);
  await attempt(g, '198.51.100.7', false);
  clock.advance(61_000);
  assert.equal(((await attempt(g, '198.51.100.7', false)) as { failures: number }).failures, 1, 'the old failure left the window');
});

test('LoginGuard: a success does not wipe out the failures of the same address (rolling window)', async () => {
  const clock = new ManualClock();
  const g = new LoginGuard({ maxFailures: 5, windowMs: 600_000, lockMs: 900_000, baseDelayMs: 1, maxDelayMs: 1 }, clock);
  let evaluated = 0;
  for (let i = 0; i < 12; i++) {
    // An attacker with one valid account logs in between guesses at another one.
    await attempt(g, '203.0.113.9', true);
    const r = await attempt(g, '203.0.113.9', false);
    if ('failures' in r) evaluated++;
    clock.advance(1_000);
  }
  assert.equal(evaluated, 5, 'only maxFailures guesses were checked before the lock');
  assert.ok(g.lockedFor('203.0.113.9') > 0);
});

test('LoginGuard: parallel logins reserve a slot first, so no more than maxFailures guesses are checked before the lock', async () => {
  const clock = new ManualClock();
  const g = new LoginGuard({ maxFailures: 5, windowMs: 600_000, lockMs: 900_000, baseDelayMs: 1, maxDelayMs: 1 }, clock);
  const slots = await Promise.all(Array.from({ length: 5 }, () => g.acquire('203.0.113.7')));
  assert.ok(slots.every((s) => 'success' in s), 'the first five get a slot');
  // Fifteen more arrive while those five are being checked: they wait, nothing is evaluated.
  const waiting = Array.from({ length: 15 }, () => g.acquire('203.0.113.7'));
  for (const s of slots) if ('success' in s) s.failure();
  const later = await Promise.all(waiting);
  assert.ok(later.every((s) => !('success' in s) && s.lockedMs === 900_000), 'all waiting logins see the lock');

  // Legitimate parallel logins from another address all get through, one slot after the other.
  const legit = await Promise.all(
    Array.from({ length: 12 }, async () => {
      const s = await g.acquire('192.0.2.50');
      if (!('success' in s)) return false;
      await new Promise((r) => setImmediate(r));
      s.success();
      return true;
    }),
  );
  assert.ok(legit.every(Boolean));
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
