/**
 * What the relay changes in a message as it arrives (src/relay/cleanup.ts): a Received header on
 * top (RFC 5321 section 4.4) and no Bcc/Resent-Bcc fields (Postfix's message_drop_headers), the
 * envelope and every other byte unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeaderCleanup, receivedHeader } from '../../../src/relay/cleanup.ts';
import { ManualClock, RawSmtp, startTestRelay, withoutReceived } from '../helpers/index.ts';

const lan = { lan: { cidrs: ['127.0.0.0/8'], allowedSenders: ['@contoso.com'] } };

test('every accepted message gets a Received header (HELO name and address, this relay, ESMTP, queue ID, the single recipient, the time) and, if it has none, a Message-ID', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 2, 9, 30, 5));
  const t = await startTestRelay({ clock, config: { networks: lan } });
  try {
    const c = await RawSmtp.open(t.port);
    await c.cmd('EHLO scanner-3.lan.contoso.com');
    await c.cmd('MAIL FROM:<scanner@contoso.com>');
    await c.cmd('RCPT TO:<alice@example.com>');
    await c.cmd('DATA');
    const reply = await c.cmd('Subject: one\r\n\r\nbody\r\n.');
    const id = /queued as (\S+)/.exec(reply ?? '')?.[1];
    c.close();
    await t.transport.delivered(1);
    const { received, rest } = withoutReceived(t.transport.deliveries[0]!.body);
    assert.equal(
      received,
      `Received: from scanner-3.lan.contoso.com ([127.0.0.1])\r\n\tby relay.test (mailbridge) with ESMTP id ${id}\r\n\tfor <alice@example.com>;\r\n\tMon, 02 Nov 2026 09:30:05 +0000\r\n`,
    );
    // No Message-ID from the application: one that stays the same on every delivery attempt.
    assert.equal(rest.toString(), `Subject: one\r\nMessage-ID: <${id}@relay.test>\r\n\r\nbody\r\n`);
  } finally {
    await t.close();
  }
});

test('Bcc and Resent-Bcc header fields are dropped as the message arrives; the envelope (BCC recipients) is unchanged', async () => {
  const t = await startTestRelay({ config: { networks: lan } });
  try {
    const c = await RawSmtp.open(t.port);
    await c.cmd('HELO old-erp');
    await c.cmd('MAIL FROM:<erp@contoso.com>');
    for (const r of ['alice@example.com', 'boss@example.com', 'audit@example.com']) assert.match(await c.cmd(`RCPT TO:<${r}>`) ?? '', /^250 /);
    await c.cmd('DATA');
    // Written in pieces that cut through the header block, as a slow client would.
    const pieces = [
      'From: erp@contoso.com\r\nTo: alice@example.com\r\nBc',
      'c: boss@example.com,\r\n\taudit@example.com\r\nSubject: invoice\r\nresent-bcc : x@example.com\r\nMessage-Id: <inv-7@erp>\r\nX-Bcc-Note: kept\r',
      '\n\r\nBcc: this line is body text and stays\r\n',
    ];
    for (const p of pieces) c.write(p);
    assert.match(await c.cmd('.') ?? '', /^250 /);
    c.close();
    await t.transport.delivered(1);
    const d = t.transport.deliveries[0]!;
    const { received, rest } = withoutReceived(d.body);
    assert.match(received, /with SMTP id /, 'HELO (not EHLO): SMTP');
    assert.doesNotMatch(received, /\tfor /, 'several recipients: none named');
    assert.equal(rest.toString(), 'From: erp@contoso.com\r\nTo: alice@example.com\r\nSubject: invoice\r\nMessage-Id: <inv-7@erp>\r\nX-Bcc-Note: kept\r\n\r\nBcc: this line is body text and stays\r\n', 'the own Message-ID kept, none added');
    assert.deepEqual(d.recipients, ['alice@example.com', 'boss@example.com', 'audit@example.com']);
  } finally {
    await t.close();
  }
});

test('HeaderCleanup: the same result wherever the chunks are cut; a message without a body is all header', () => {
  const received = receivedHeader({
    helo: 'h',
    ip: '::ffff:192.0.2.1',
    hostname: 'relay.test',
    esmtp: true,
    tls: true,
    authenticated: false,
    smtpUtf8: false,
    queueId: 'ID1',
    recipients: ['a@example.com', 'b@example.com'],
    date: new Date(Date.UTC(2026, 0, 5, 1, 2, 3)),
  });
  assert.equal(received, 'Received: from h ([192.0.2.1])\r\n\tby relay.test (mailbridge) with ESMTPS id ID1;\r\n\tMon, 05 Jan 2026 01:02:03 +0000\r\n');
  const input = Buffer.from('To: a@example.com\r\nBCC: b@example.com\r\n  c@example.com\r\nSubject: s\r\n\r\nbody\r\n\r\nBcc: x\r\n');
  const expected = Buffer.concat([Buffer.from(received), Buffer.from('To: a@example.com\r\nSubject: s\r\n\r\nbody\r\n\r\nBcc: x\r\n')]);
  for (let cut = 0; cut <= input.length; cut++) {
    for (const size of [1, 3, 7]) {
      const cleanup = new HeaderCleanup(received);
      const out: Buffer[] = [...cleanup.push(input.subarray(0, cut))];
      for (let i = cut; i < input.length; i += size) out.push(...cleanup.push(input.subarray(i, i + size)));
      out.push(...cleanup.end());
      assert.equal(Buffer.concat(out).toString(), expected.toString(), `cut at ${cut}, then ${size}-byte chunks`);
    }
  }
  const headOnly = new HeaderCleanup('R: x\r\n');
  assert.equal(Buffer.concat([...headOnly.push(Buffer.from('Subject: s\r\nBcc: y\r\n')), ...headOnly.end()]).toString(), 'R: x\r\nSubject: s\r\n');
  const withId = new HeaderCleanup('R: x\r\n', '<Q1@relay.test>');
  assert.equal(Buffer.concat([...withId.push(Buffer.from('Subject: s\r\n\r\nb\r\n')), ...withId.end()]).toString(), 'R: x\r\nSubject: s\r\nMessage-ID: <Q1@relay.test>\r\n\r\nb\r\n');
  const hasId = new HeaderCleanup('R: x\r\n', '<Q1@relay.test>');
  assert.equal(Buffer.concat([...hasId.push(Buffer.from('MESSAGE-ID:\r\n <own@app>\r\n\r\nb\r\n')), ...hasId.end()]).toString(), 'R: x\r\nMESSAGE-ID:\r\n <own@app>\r\n\r\nb\r\n');
  // A header section over 1 MiB is not held whole: the fields so far are cleaned, the rest passes.
  const pad = Array.from({ length: 20_000 }, (_, i) => `X-Pad-${i}: ${'p'.repeat(50)}\r\n`).join('');
  const huge = Buffer.from(`Bcc: early@example.com\r\n${pad}Subject: s\r\n\r\nbody\r\n`);
  const big = new HeaderCleanup('R: x\r\n', '<Q2@relay.test>');
  const bigOut: Buffer[] = [];
  for (let i = 0; i < huge.length; i += 65_536) bigOut.push(...big.push(huge.subarray(i, i + 65_536)));
  bigOut.push(...big.end());
  const bigText = Buffer.concat(bigOut).toString();
  assert.ok(bigText.startsWith('R: x\r\nX-Pad-0: '), 'the early Bcc is gone');
  assert.equal(bigText.replace(/Message-ID: <Q2@relay\.test>\r\n/, ''), `R: x\r\n${pad}Subject: s\r\n\r\nbody\r\n`, 'nothing else changed; the Message-ID sits between two fields');
  const noHead = new HeaderCleanup('R: x\r\n');
  assert.equal(Buffer.concat([...noHead.push(Buffer.from('\r\nBcc: body\r\n')), ...noHead.end()]).toString(), 'R: x\r\n\r\nBcc: body\r\n');
  assert.match(receivedHeader({ helo: 'bad name!', ip: '2001:db8::1', hostname: 'r', esmtp: true, tls: false, authenticated: true, smtpUtf8: true, queueId: 'I', recipients: [], date: new Date(0) }), /^Received: from \[IPv6:2001:db8::1\]\r\n\tby r \(mailbridge\) with UTF8SMTPA id I;/);
});
