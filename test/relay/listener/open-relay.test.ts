import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp, startTestRelay, spoolFiles, testUser } from '../helpers/index.ts';

/** Sender and recipient forms open-relay testers try (source routes, % and ! hacks, literals…). */
const FORMS = [
  'victim@example.com',
  'VICTIM@EXAMPLE.COM',
  '"victim"@example.com',
  '@relay.test:victim@example.com',
  'victim%example.com@relay.test',
  'example.com!victim@relay.test',
  'victim@[192.0.2.1]',
  'victim@[IPv6:2001:db8::1]',
  'postmaster',
  'victim@example.com.',
  'scanner@contoso.com',
  '',
];

const offices = { office: { cidrs: ['10.0.0.0/8', 'fd00::/8', '192.0.2.0/24'], allowedSenders: ['@contoso.com'] } };

test('open-relay test: an unauthenticated client outside the allow-list relays nothing, whatever the address form', async () => {
  const t = await startTestRelay({ config: { networks: offices, users: { app: await testUser(['@contoso.com']) } } });
  try {
    for (const form of FORMS) {
      const c = await RawSmtp.open(t.port);
      await c.cmd('EHLO attacker.test');
      const mail = await c.cmd(`MAIL FROM:<${form}>`);
      assert.match(mail!, /^5\d\d /, `MAIL FROM:<${form}> → ${mail}`);
      // Every form the library can parse reaches the policy and gets the 530 of RFC 4954.
      if (!/^501 /.test(mail!)) assert.match(mail!, /^530 5\.7\.0 Authentication required$/, form);
      const rcpt = await c.cmd(`RCPT TO:<${form || 'victim@example.com'}>`);
      assert.match(rcpt!, /^5\d\d /, `RCPT TO:<${form}> → ${rcpt}`);
      assert.match(await c.cmd('DATA') ?? '', /^503 /);
      c.close();
    }
    // Pipelined in one write, with a message after DATA: still nothing.
    const p = await RawSmtp.open(t.port);
    p.write('EHLO attacker.test\r\nMAIL FROM:<scanner@contoso.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: spam\r\n\r\nbuy\r\n.\r\nQUIT\r\n');
    const replies = await p.nextReplies(4);
    assert.match(replies[1]!, /^530 5\.7\.0/);
    assert.match(replies[2]!, /^(530|503) /);
    assert.match(replies[3]!, /^503 /);
    p.close();

    // Probing on one connection: the tenth refusal closes it.
    const probe = await RawSmtp.open(t.port);
    await probe.cmd('EHLO attacker.test');
    const probeReplies: string[] = [];
    for (let i = 0; i < 10; i++) probeReplies.push((await probe.cmd(`MAIL FROM:<probe${i}@example.com>`))!);
    assert.ok(probeReplies.slice(0, 9).every((r) => r.startsWith('530 5.7.0')));
    assert.match(probeReplies[9]!, /^421 4\.7\.0 Authentication required; too many refused commands, closing connection$/);
    assert.equal(await probe.reply(), undefined, 'closed');

    assert.deepEqual(await t.store.queue.counts(), { incoming: 0, active: 0, deferred: 0, held: 0, sent: 0, bounced: 0 });
    assert.deepEqual(spoolFiles(t), []);
    assert.equal(t.transport.attempts.length, 0);
    const refused = t.lines.filter((l) => l.mb === 'MB_RELAY_AUTH_REQUIRED');
    assert.ok(refused.length >= FORMS.length - 2 && refused.every((l) => l.ip === '127.0.0.1'), 'each refusal is logged with its MB code and address');
  } finally {
    await t.close();
  }
});

test('an allowed network relays without AUTH, but only as its allowed senders; IPv4 and IPv6 CIDRs both count', async () => {
  const t = await startTestRelay({
    config: {
      listeners: [
        { host: '127.0.0.1', port: 0 },
        { host: '::1', port: 0 },
      ],
      networks: { loopback4: { cidrs: ['127.0.0.0/8'], allowedSenders: ['scanner@contoso.com'] }, ...offices },
    },
  });
  try {
    const [v4, v6] = t.relay.listeners;
    const a = await RawSmtp.open(v4!.port, '127.0.0.1');
    await a.cmd('EHLO printer.lan');
    assert.match(await a.cmd('MAIL FROM:<other@contoso.com>') ?? '', /^550 5\.7\.1 Sender address <other@contoso\.com> not allowed for network:loopback4$/);
    assert.match(await a.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^250 2\.1\.0 /);
    assert.match(await a.cmd('RCPT TO:<alice@example.com>') ?? '', /^250 2\.1\.5 /);
    assert.match(await a.cmd('DATA') ?? '', /^354 /);
    assert.match(await a.cmd('Subject: scan\r\n\r\nscan attached\r\n.') ?? '', /^250 2\.6\.0 Message queued as /);
    a.close();

    // ::1 is not in 127.0.0.0/8 nor in fd00::/8: refused.
    const b = await RawSmtp.open(v6!.port, '::1');
    await b.cmd('EHLO printer.lan');
    assert.match(await b.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^530 5\.7\.0 /);
    b.close();
    await t.transport.delivered(1);
    assert.equal(t.transport.deliveries[0]!.sender, 'scanner@contoso.com');
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_AUTH_REQUIRED' && l.ip === '::1'));
  } finally {
    await t.close();
  }

  const t6 = await startTestRelay({
    config: { listeners: [{ host: '::1', port: 0 }], networks: { v6: { cidrs: ['::1/128'], allowedSenders: ['@contoso.com'] } } },
  });
  try {
    const c = await RawSmtp.open(t6.port, '::1');
    await c.cmd('EHLO printer.lan');
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^250 /);
    c.close();
  } finally {
    await t6.close();
  }
});
