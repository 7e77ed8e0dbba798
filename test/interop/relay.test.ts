/**
 * The relay as `serve` runs it, against the whole sandbox: mailbridge.yaml from the sandbox's
 * example (sealed client secret, key file) plus a relay section; startGateway starts HTTP and the
 * relay with one Identity. An application (nodemailer) sends over SMTP AUTH to the relay; the mail
 * goes out over SMTP XOAUTH2 for one sender and over Graph for another, and is read back through the
 * sandbox's IMAP front. The admin gets a start mail and, when the gateway stops, a stop mail.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { loadConfig } from '../../src/app/config.ts';
import { createLogger } from '../../src/log/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { startFullSandbox, type FullSandbox } from '../relay/transports/full-sandbox.ts';

let s: FullSandbox;
let gw: Gateway | undefined;
const PASSWORD = 'scanner password 1';

before(async () => {
  s = await startFullSandbox();
});

after(async () => {
  await gw?.close('test end');
  await s?.close();
});

test('serve with a relay section: mail from an application arrives over SMTP XOAUTH2 and over Graph; admin mails at start and stop', async () => {
  const file = s.writeConfig('mailbridge-relay.yaml', {
    server: { listen: '127.0.0.1', port: 0 },
    relay: await s.relay(
      'relay',
      PASSWORD,
      [
        { name: 'graph', senders: ['info@contoso.test'], connection: 'sandbox', transport: 'graph', graph: { url: s.graph.url } },
        { name: 'smtp', senders: ['@contoso.test'], connection: 'sandbox', mailbox: 'scanner@contoso.test', smtp: { host: '127.0.0.1', port: s.sandbox.smtp.port } },
      ],
      { adminMail: { to: ['alice@contoso.test'], from: 'scanner@contoso.test' } },
    ),
  });
  const { config, keyFile } = await loadConfig(file, {});
  gw = await startGateway(config, createLogger({ level: 'silent' }), { keyFile, env: {} });
  assert.ok(gw.relay, 'the relay runs inside the gateway');
  const health = await fetch(`${gw.url}/health`);
  assert.equal(health.status, 200);

  const app = nodemailer.createTransport({
    host: '127.0.0.1',
    port: gw.relay.relay.listeners[0]!.port,
    secure: false,
    requireTLS: true,
    tls: { ca: gw.relay.relay.tls.cert, checkServerIdentity: () => undefined },
    auth: { user: 'scanner', pass: PASSWORD },
  });
  const scan = await app.sendMail({
    from: 'Scanner <scanner@contoso.test>',
    to: 'bob@contoso.test',
    bcc: 'info@contoso.test',
    subject: 'Scan 0815',
    text: 'Scan attached.',
    attachments: [{ filename: 'scan.pdf', content: Buffer.from('%PDF-1.4 test\n') }],
  });
  const notice = await app.sendMail({ from: 'info@contoso.test', to: 'bob@contoso.test', subject: 'Notice via Graph', text: 'Hello over Graph.' });
  app.close();
  assert.match(scan.response, /^250 .*queued as/);
  assert.match(notice.response, /^250 .*queued as/);
  await gw.relay.relay.manager.whenIdle();

  const bob = (await s.inbox('bob@contoso.test')).map(String);
  const viaSmtp = bob.find((m) => m.includes('Subject: Scan 0815'));
  assert.ok(viaSmtp, 'bob got the scan');
  assert.match(viaSmtp, /filename=scan\.pdf/);
  assert.ok(!/^Bcc:/im.test(viaSmtp), 'no Bcc header in the delivered copy');
  assert.ok((await s.inbox('info@contoso.test')).some((m) => m.includes('Subject: Scan 0815')), 'the BCC recipient got the scan');
  assert.ok(bob.some((m) => m.includes('Subject: Notice via Graph')), 'bob got the Graph notice');
  assert.ok(s.graph.stats.sent.some((x) => x.mailbox === 'info@contoso.test' && x.to.includes('bob@contoso.test')), 'the notice went through Graph');

  const started = (await s.inbox('alice@contoso.test')).map(String).find((m) => m.includes('X-Mailbridge-Event: start'));
  assert.ok(started, 'the admin got a start mail');
  assert.equal((await simpleParser(started)).subject, 'mailbridge started on relay.sandbox.test / mailbridge gestartet auf relay.sandbox.test');

  const stopping = gw;
  gw = undefined;
  await stopping.close('SIGTERM');
  const stopped = (await s.inbox('alice@contoso.test')).map(String).find((m) => m.includes('X-Mailbridge-Event: stop'));
  assert.ok(stopped, 'the admin got a stop mail before the relay closed');
  assert.match((await simpleParser(stopped)).text ?? '', /Note: SIGTERM/);
});
