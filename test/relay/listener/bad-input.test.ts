import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp, startTestRelay, spoolFiles, withoutReceived, type TestRelay } from '../helpers/index.ts';

const lan = { lan: { cidrs: ['127.0.0.0/8'], allowedSenders: ['@contoso.com', '@bücher.example'] } };

async function nothingQueued(t: TestRelay): Promise<void> {
  assert.deepEqual(await t.store.queue.counts(), { incoming: 0, active: 0, deferred: 0, held: 0, sent: 0, bounced: 0 });
  assert.deepEqual(spoolFiles(t), [], 'no spool file left behind');
}

async function openTransaction(t: TestRelay): Promise<RawSmtp> {
  const c = await RawSmtp.open(t.port);
  await c.cmd('EHLO app.test');
  assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^250 2\.1\.0 /);
  assert.match(await c.cmd('RCPT TO:<alice@example.com>') ?? '', /^250 2\.1\.5 /);
  assert.match(await c.cmd('DATA') ?? '', /^354 /);
  return c;
}

const SMUGGLED = 'MAIL FROM:<ceo@contoso.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nFrom: ceo@contoso.com\r\nSubject: smuggled\r\n\r\nwire the money\r\n';

test('SMTP smuggling: bare LF / bare CR end-of-data tricks refuse the whole message with 554 5.5.2, nothing is split or queued', async () => {
  const t = await startTestRelay({ config: { networks: lan } });
  try {
    const attempts: Array<[string, string, 'LF' | 'CR']> = [
      ['<LF>.<CR><LF>', `Subject: a\r\n\r\nhello\n.\r\n${SMUGGLED}.\r\n`, 'LF'],
      ['<CR><LF>.<LF>', `Subject: a\r\n\r\nhello\r\n.\n${SMUGGLED}.\r\n`, 'LF'],
      ['<LF>.<LF>', `Subject: a\r\n\r\nhello\n.\n${SMUGGLED}.\r\n`, 'LF'],
      ['<CR>.<CR><LF>', `Subject: a\r\n\r\nhello\r.\r\n${SMUGGLED}.\r\n`, 'CR'],
      ['bare LF in headers', 'Subject: a\nX-Other: b\r\n\r\nbody\r\n.\r\n', 'LF'],
      ['bare CR at the end of a line', 'Subject: a\r\n\r\nbody\r\r\n.\r\n', 'CR'],
    ];
    for (const [name, data, what] of attempts) {
      const c = await openTransaction(t);
      c.write(data);
      const r = await c.reply();
      assert.match(r!, new RegExp(`^554 5\\.5\\.2 Message refused: bare <${what}> in line \\d+; every line must end with <CR><LF>$`), name);
      // The smuggled commands were part of the refused message: the session is clean, no reply is pending.
      assert.match(await c.cmd('NOOP') ?? '', /^250 /, `${name}: next reply belongs to NOOP`);
      assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^250 /, `${name}: a fresh transaction can start`);
      c.close();
    }
    await nothingQueued(t);
    assert.equal(t.transport.attempts.length, 0);
    const logged = t.lines.filter((l) => l.mb === 'MB_RELAY_SMUGGLING');
    assert.equal(logged.length, attempts.length);
    assert.ok(logged.every((l) => l.ip === '127.0.0.1' && l.sender === 'scanner@contoso.com'));
  } finally {
    await t.close();
  }
});

test('proper pipelining (RFC 2920) works: two transactions in one write are both queued with correct replies', async () => {
  const t = await startTestRelay({ config: { networks: lan } });
  try {
    const c = await RawSmtp.open(t.port);
    const ehlo = await c.cmd('EHLO app.test');
    assert.match(ehlo!, /PIPELINING/);
    assert.match(ehlo!, /ENHANCEDSTATUSCODES/);
    const msg = (n: number) => `MAIL FROM:<scanner@contoso.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: ${n}\r\n\r\n..dot-stuffed\r\n.\r\n`;
    c.write(msg(1) + msg(2) + 'QUIT\r\n');
    const replies = await c.nextReplies(11);
    assert.deepEqual(
      replies.map((r) => r!.slice(0, 3)),
      ['250', '250', '250', '354', '250', '250', '250', '250', '354', '250', '221'],
    );
    await t.transport.delivered(2);
    for (const d of t.transport.deliveries) assert.match(d.body.toString(), /\r\n\r\n\.dot-stuffed\r\n$/);
  } finally {
    await t.close();
  }
});

test('pipelining abuse and malformed commands get clear replies and queue nothing', async () => {
  const t = await startTestRelay({ config: { networks: lan, maxRecipients: 3 } });
  try {
    // Talking before the greeting.
    const early = await RawSmtp.open(t.port, '127.0.0.1', { waitGreeting: false });
    early.write('EHLO eager.test\r\nMAIL FROM:<scanner@contoso.com>\r\n');
    const earlyReplies = [await early.reply(), await early.reply()];
    assert.ok(earlyReplies.some((r) => /^421 .*You talk too soon/.test(r ?? '')), JSON.stringify(earlyReplies));
    early.close();

    // An HTTP request sent to the SMTP port (browser cross-protocol attack).
    const http = await RawSmtp.open(t.port);
    assert.match(await http.cmd('GET / HTTP/1.1') ?? '', /^421 .*HTTP requests not allowed/);
    http.close();

    const c = await RawSmtp.open(t.port);
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^503 5\.5\.1 Error: send HELO\/EHLO first/);
    await c.cmd('EHLO app.test');
    assert.match(await c.cmd('FROB nicate') ?? '', /^500 5\.5\.2 Error: command not recognized/);
    assert.match(await c.cmd('MAIL FROM: scanner@contoso.com') ?? '', /^501 5\.1\.7 /);
    assert.match(await c.cmd('RCPT TO:<alice@example.com>') ?? '', /^503 5\.5\.1 Error: need MAIL command/);
    assert.match(await c.cmd('DATA') ?? '', /^503 5\.5\.1 Error: need RCPT command/);
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com> SIZE=abc') ?? '', /^501 /);
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^250 /);
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^503 5\.5\.1 Error: nested MAIL command/);
    assert.match(await c.cmd('RCPT TO:<postmaster>') ?? '', /^550 5\.1\.3 Recipient <postmaster> needs a domain/);
    // A flood of pipelined recipients: the limit answers each extra one with 452 4.5.3.
    c.write(Array.from({ length: 6 }, (_, i) => `RCPT TO:<r${i}@example.com>\r\n`).join(''));
    const rcpts = await c.nextReplies(6);
    assert.deepEqual(rcpts.map((r) => r!.slice(0, 9)), ['250 2.1.5', '250 2.1.5', '250 2.1.5', '452 4.5.3', '452 4.5.3', '452 4.5.3']);
    assert.match(await c.cmd('RSET') ?? '', /^250 /);
    c.close();

    // Message data pipelined behind a DATA that is refused: the lines are commands, answered and then cut off.
    const d = await RawSmtp.open(t.port);
    await d.cmd('EHLO app.test');
    d.write('DATA\r\n' + Array.from({ length: 12 }, (_, i) => `line ${i} of a message nobody asked for\r\n`).join('') + '.\r\n');
    const dataReplies: string[] = [];
    for (let r = await d.reply(); r !== undefined; r = await d.reply()) dataReplies.push(r);
    assert.match(dataReplies[0]!, /^503 /);
    assert.match(dataReplies.at(-1)!, /^421 .*too many unrecognized commands/);
    assert.equal(d.closed, true);

    // An over-long command line.
    const long = await RawSmtp.open(t.port);
    await long.cmd('EHLO app.test');
    long.write(`MAIL FROM:<${'a'.repeat(20_000)}@contoso.com>\r\n`);
    assert.match((await long.reply()) ?? '', /^421 .*Command line too long/);
    long.close();

    await nothingQueued(t);
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_TOO_MANY_RECIPIENTS' && l.limit === 3));
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_PROTOCOL_ABUSE' && /too many unrecognized commands/.test(String(l.reply))));
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_PROTOCOL_ABUSE' && /HTTP requests not allowed/.test(String(l.reply))));
  } finally {
    await t.close();
  }
});

test('8-bit and SMTPUTF8 messages over a raw connection are queued and handed on byte for byte', async () => {
  const t = await startTestRelay({ config: { networks: lan } });
  try {
    const c = await RawSmtp.open(t.port);
    const ehlo = await c.cmd('EHLO app.test');
    assert.match(ehlo!, /8BITMIME/);
    assert.match(ehlo!, /SMTPUTF8/);
    assert.match(await c.cmd('MAIL FROM:<jörg@bücher.example> SMTPUTF8 BODY=8BITMIME') ?? '', /^250 /);
    assert.match(await c.cmd('RCPT TO:<josé@exämple.com>') ?? '', /^250 /);
    assert.match(await c.cmd('DATA') ?? '', /^354 /);
    const body = Buffer.concat([
      Buffer.from('From: jörg@bücher.example\r\nSubject: Grüße\r\nMessage-ID: <g1@bücher.example>\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n', 'utf8'),
      Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65, 0x20, 0xe4, 0xf6, 0x0d, 0x0a]), // "Grüße äö" in Latin-1
      Buffer.from('UTF-8 too: 日本語 €\r\n', 'utf8'),
    ]);
    c.write(body);
    assert.match(await c.cmd('.') ?? '', /^250 2\.6\.0 /);
    c.close();
    await t.transport.delivered(1);
    const d = t.transport.deliveries[0]!;
    assert.ok(withoutReceived(d.body).rest.equals(body));
    assert.equal(d.sender, 'jörg@bücher.example');
    assert.deepEqual(d.recipients, ['josé@exämple.com']);
    const rec = await t.store.queue.get(d.id);
    assert.equal(rec?.bodyType, '8bitmime');
    assert.equal(rec?.smtpUtf8, true);
  } finally {
    await t.close();
  }
});

test('size limit: SIZE is advertised; too big at MAIL FROM or in DATA gets 552 5.3.4, nothing queued, an MB-coded log line', async () => {
  const limit = 4096;
  const t = await startTestRelay({ config: { networks: lan, maxMessageSize: limit } });
  try {
    const c = await RawSmtp.open(t.port);
    assert.match(await c.cmd('EHLO app.test') ?? '', new RegExp(`SIZE ${limit}`));
    assert.match(await c.cmd(`MAIL FROM:<scanner@contoso.com> SIZE=${limit + 1}`) ?? '', /^552 5\.3\.4 /);
    c.close();

    const big = await openTransaction(t);
    big.write('Subject: big\r\n\r\n' + ('x'.repeat(98) + '\r\n').repeat(60));
    assert.match(await big.cmd('.') ?? '', /^552 5\.3\.4 /);
    // The session goes on after the refusal.
    assert.match(await big.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^250 /);
    big.close();
    await nothingQueued(t);
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_MESSAGE_TOO_LARGE' && l.limit === limit));

    const fits = await openTransaction(t);
    fits.write('Subject: fits\r\n\r\n' + ('y'.repeat(98) + '\r\n').repeat(30));
    assert.match(await fits.cmd('.') ?? '', /^250 /);
    fits.close();
    await t.transport.delivered(1);
  } finally {
    await t.close();
  }
});

test('unknown MAIL/RCPT parameters get 555 5.5.4; non-ASCII addresses without SMTPUTF8 get 553 5.6.7 (an xn-- domain is fine); a NUL byte refuses the message with 554 5.6.0', async () => {
  const t = await startTestRelay({ config: { networks: lan } });
  try {
    const c = await RawSmtp.open(t.port);
    await c.cmd('EHLO app.test');
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com> FOO=BAR') ?? '', /^555 5\.5\.4 MAIL FROM parameter FOO not recognized$/);
    // DSN and REQUIRETLS are not offered, so their parameters are unknown too; AUTH= needs AUTH offered.
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com> RET=HDRS ENVID=x') ?? '', /^555 5\.5\.4 MAIL FROM parameter RET ENVID not recognized$/);
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com> AUTH=<>') ?? '', /^555 5\.5\.4 /);
    assert.match(await c.cmd('MAIL FROM:<jörg@bücher.example>') ?? '', /^553 5\.6\.7 Sender address with non-ASCII characters needs SMTPUTF8 on MAIL FROM$/);
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com> SIZE=100 BODY=8BITMIME') ?? '', /^250 /);
    assert.match(await c.cmd('RCPT TO:<alice@example.com> NOTIFY=NEVER') ?? '', /^555 5\.5\.4 RCPT TO parameter NOTIFY not recognized$/);
    assert.match(await c.cmd('RCPT TO:<josé@example.com>') ?? '', /^553 5\.6\.7 /);
    assert.match(await c.cmd('RCPT TO:<anna@bücher.example>') ?? '', /^553 5\.6\.7 /, 'a raw UTF-8 domain needs SMTPUTF8 too');
    assert.match(await c.cmd('RCPT TO:<anna@xn--bcher-kva.example>') ?? '', /^250 /, 'the A-label of the same domain is ASCII');
    assert.match(await c.cmd('DATA') ?? '', /^354 /);
    assert.match(await c.cmd('Subject: idna\r\n\r\nhi\r\n.') ?? '', /^250 /);
    await t.transport.delivered(1);
    assert.deepEqual(t.transport.deliveries[0]!.recipients, ['anna@xn--bcher-kva.example'], 'kept as the client sent it, not turned into UTF-8');

    // NUL bytes: refused like bare line ends, nothing queued, the session goes on.
    assert.match(await c.cmd('MAIL FROM:<scanner@contoso.com>') ?? '', /^250 /);
    assert.match(await c.cmd('RCPT TO:<alice@example.com>') ?? '', /^250 /);
    assert.match(await c.cmd('DATA') ?? '', /^354 /);
    c.write(Buffer.from('Subject: nul\r\n\r\nfirst line\r\nsecond\x00line\r\n.\r\n', 'latin1'));
    assert.match((await c.reply()) ?? '', /^554 5\.6\.0 Message refused: NUL byte in line 4; mail text must not contain NUL$/);
    assert.match(await c.cmd('NOOP') ?? '', /^250 /);
    c.close();

    const counts = await t.store.queue.counts();
    assert.equal(counts.incoming + counts.active + counts.deferred + counts.sent, 1, 'only the IDNA message was queued');
    assert.equal(t.transport.attempts.length, 1);
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_PARAMETER_UNKNOWN' && l.parameters === 'FOO'));
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_UTF8_WITHOUT_SMTPUTF8' && l.address === 'josé@example.com'));
    assert.ok(t.lines.some((l) => l.mb === 'MB_RELAY_NUL_BYTE' && l.line === 4));
  } finally {
    await t.close();
  }
});
