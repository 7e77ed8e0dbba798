import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import { startTestRelay, PASSWORD, testUser, spoolFiles, withoutReceived } from '../helpers/index.ts';

/** Builds a message exactly as nodemailer would send it (CRLF), so the test knows every byte. */
async function compose(mail: SendMailOptions): Promise<{ raw: Buffer; envelope: { from: string; to: string[] } }> {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
  const info = await t.sendMail(mail);
  return { raw: info.message as Buffer, envelope: info.envelope as { from: string; to: string[] } };
}

test('mail from nodemailer (STARTTLS + AUTH PLAIN) reaches the transport byte for byte, BCC recipients kept', async () => {
  const t = await startTestRelay({ config: { users: { app: await testUser(['@contoso.com']) } } });
  try {
    const { raw, envelope } = await compose({
      from: 'Scanner <scanner@contoso.com>',
      to: 'alice@example.com',
      cc: 'bob@example.com',
      subject: 'Scan 4711 – Größe',
      // Lines starting with a dot (dot-stuffing must be undone exactly), a lone dot, trailing spaces.
      text: 'Hallo,\n.\n..two dots\n.leading dot  \nÄÖÜ ß €\n',
      attachments: [{ filename: 'scan.pdf', content: Buffer.from('%PDF-1.4\n% binary \x00\x01\xff\n') }],
      headers: { 'X-Custom': 'kept as is' },
    });
    // A BCC recipient exists only in the envelope (RCPT TO), never in the headers.
    envelope.to.push('hidden@example.org');
    assert.ok(!raw.toString().includes('hidden@example.org'));

    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: t.port,
      secure: false,
      requireTLS: true,
      auth: { user: 'app', pass: PASSWORD },
      authMethod: 'PLAIN',
      tls: { ca: t.relay.tls.cert, servername: 'localhost' },
    });
    const info = await client.sendMail({ envelope, raw });
    assert.match(info.response, /^250 2\.6\.0 Message queued as [0-9A-Z]{18}$/);

    await t.transport.delivered(1);
    const d = t.transport.deliveries[0]!;
    const { received, rest } = withoutReceived(d.body);
    assert.ok(rest.equals(raw), 'the transport gets exactly the bytes the application sent, below the Received header');
    // Three recipients: no "for" clause (it would name the BCC recipient to everyone).
    assert.match(received, new RegExp(`^Received: from \\S+ \\(\\[127\\.0\\.0\\.1\\]\\)\r\n\tby relay\\.test \\(mailbridge\\) with ESMTPSA id ${d.id};\r\n\t\\w{3}, \\d\\d \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\r\n$`));
    assert.equal(d.sender, 'scanner@contoso.com');
    assert.deepEqual([...d.recipients].sort(), ['alice@example.com', 'bob@example.com', 'hidden@example.org']);
    await t.relay.manager.whenIdle();
    const rec = await t.store.queue.get(d.id);
    assert.equal(rec?.state, 'sent');
    assert.equal(rec?.relayUser, 'app');
    assert.equal(rec?.clientIp, '127.0.0.1');
    assert.deepEqual(spoolFiles(t), [], 'the body leaves the spool once sent');
  } finally {
    await t.close();
  }
});

test('AUTH LOGIN works too, and on an implicit-TLS listener', async () => {
  const t = await startTestRelay({
    config: {
      listeners: [
        { host: '127.0.0.1', port: 0, tls: 'implicit' },
        { host: '127.0.0.1', port: 0, tls: 'starttls' },
      ],
      users: { app: await testUser(['scanner@contoso.com']) },
    },
  });
  try {
    const [implicit, starttls] = t.relay.listeners;
    for (const [l, secure] of [[implicit!, true], [starttls!, false]] as const) {
      const client = nodemailer.createTransport({
        host: '127.0.0.1',
        port: l.port,
        secure,
        requireTLS: !secure,
        auth: { user: 'app', pass: PASSWORD },
        authMethod: 'LOGIN',
        tls: { ca: t.relay.tls.cert, servername: 'localhost' },
      });
      const info = await client.sendMail({ from: 'scanner@contoso.com', to: 'x@example.com', subject: `via ${l.tls}`, text: 'hi' });
      assert.match(info.response, /^250 /);
    }
    await t.transport.delivered(2);
    assert.deepEqual(t.transport.deliveries.map((d) => /Subject: (.*)\r\n/.exec(d.body.toString())![1]).sort(), ['via implicit', 'via starttls']);
  } finally {
    await t.close();
  }
});

test('8-bit and SMTPUTF8 mail from nodemailer arrives intact (UTF-8 addresses, 8-bit body)', async () => {
  const t = await startTestRelay({ config: { users: { app: await testUser(['@contoso.com', '@bücher.example']) } } });
  try {
    const raw = Buffer.from(
      [
        'From: Jörg <jörg@bücher.example>',
        'To: José <josé@example.com>',
        'Subject: Grüße aus Köln',
        'Message-ID: <koeln-1@bücher.example>',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
        '',
        'Schöne Grüße – 8 bit body: äöü ÄÖÜ ß € 日本語',
        '',
      ].join('\r\n'),
      'utf8',
    );
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: t.port,
      auth: { user: 'app', pass: PASSWORD },
      tls: { ca: t.relay.tls.cert, servername: 'localhost' },
    });
    const info = await client.sendMail({ envelope: { from: 'jörg@bücher.example', to: ['josé@example.com'] }, raw });
    assert.match(info.response, /^250 /);
    await t.transport.delivered(1);
    const d = t.transport.deliveries[0]!;
    const { received, rest } = withoutReceived(d.body);
    assert.ok(rest.equals(raw), '8-bit bytes unchanged');
    assert.match(received, /with UTF8SMTPSA id \S+\r\n\tfor <josé@example\.com>;\r\n/, 'RFC 6531 protocol name; the one recipient named');
    assert.equal(d.sender, 'jörg@bücher.example');
    assert.deepEqual(d.recipients, ['josé@example.com']);
    const rec = await t.store.queue.get(d.id);
    assert.equal(rec?.smtpUtf8, true);
  } finally {
    await t.close();
  }
});
