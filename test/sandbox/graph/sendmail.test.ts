/**
 * Sandbox Graph sendMail: JSON and MIME forms delivered over LMTP into the real Dovecot mailboxes
 * (checked over IMAP, byte for byte for MIME), BCC delivered but not shown, Sent Items, send-as,
 * and every refusal with Graph's status, code and message.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ImapFlow } from 'imapflow';
import { startImapFront } from '../../../src/sandbox/exchange/imap.ts';
import { APP, graphError, INFO, rfc822, startRig, T, USER, type Response, type Rig } from './helpers.ts';

let rig: Rig;
before(async () => {
  rig = await startRig();
});
after(async () => {
  await rig?.close();
});

const ALICE = USER.alice.upn;
const BOB = USER.bob.upn;
const DAVE = USER.dave.upn;
const SEND = `/v1.0/users/${ALICE}/sendMail`;

/** The message with this subject in a folder of a mailbox, read straight from Dovecot. */
async function find(address: string, folder: string, subject: string): Promise<{ uid: number; source: Buffer; flags: Set<string> } | undefined> {
  const c = await rig.imap(address);
  try {
    await c.mailboxOpen(folder);
    const uids = (await c.search({ header: { subject } }, { uid: true })) || [];
    const uid = uids[0];
    if (uid === undefined) return undefined;
    const m = await c.fetchOne(String(uid), { source: true, flags: true }, { uid: true });
    return m && m.source ? { uid, source: m.source, flags: m.flags ?? new Set() } : undefined;
  } finally {
    await c.logout();
  }
}

async function count(address: string, folder: string): Promise<number> {
  const c = await rig.imap(address);
  try {
    // A folder Graph never touched may not exist yet in Dovecot: it holds nothing.
    const st = await c.status(folder, { messages: true }).catch(() => false as const);
    return st ? (st.messages ?? 0) : 0;
  } finally {
    await c.logout();
  }
}

function expectError(res: Response, status: number, code: string, message: string): void {
  assert.equal(res.status, status, res.text);
  const err = graphError(res);
  assert.equal(err.code, code);
  assert.equal(err.message, message);
}

const to = (...addresses: string[]) => addresses.map((address) => ({ emailAddress: { address } }));

describe('sendMail, JSON form', () => {
  test('202 with an empty body; delivered with subject, HTML body, cc, x- header and attachment; BCC delivered but not shown; copy in Sent Items', async () => {
    const subject = `json ${randomUUID()}`;
    const pdf = Buffer.from('%PDF-1.4 sandbox attachment bytes \u0000\u0001\u00ff', 'latin1');
    const sentBefore = await count(ALICE, 'Sent Items');
    const res = await rig.call('POST', SEND, {
      token: await rig.appToken(APP.relay),
      json: {
        message: {
          subject,
          body: { contentType: 'HTML', content: '<p>Hello <b>Bob</b></p>' },
          toRecipients: [{ emailAddress: { address: BOB, name: 'Bob Baker' } }],
          ccRecipients: to(INFO),
          bccRecipients: to(DAVE),
          internetMessageHeaders: [{ name: 'x-mailbridge-test', value: 'graph-json' }],
          attachments: [{ '@odata.type': '#microsoft.graph.fileAttachment', name: 'scan.pdf', contentType: 'application/pdf', contentBytes: pdf.toString('base64') }],
        },
      },
    });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.body.length, 0, 'no response body');

    for (const rcpt of [BOB, INFO, DAVE]) {
      const got = await find(rcpt, 'INBOX', subject);
      assert.ok(got, `delivered to ${rcpt}`);
      assert.ok(got.source.toString('latin1').startsWith(`Return-Path: <${ALICE}>\r\n`));
      assert.doesNotMatch(got.source.toString('latin1'), /^bcc:/im, `no Bcc header at ${rcpt}`);
      const parsed = await simpleParser(got.source);
      assert.equal(parsed.subject, subject);
      assert.equal(parsed.from?.value[0]?.address, ALICE);
      assert.equal(parsed.from?.value[0]?.name, 'Alice Able', 'From is the mailbox with its display name');
      assert.equal(parsed.headers.get('x-mailbridge-test'), 'graph-json');
      assert.match(String(parsed.html), /<p>Hello <b>Bob<\/b><\/p>/);
      assert.equal(parsed.attachments.length, 1);
      assert.equal(parsed.attachments[0]?.filename, 'scan.pdf');
      assert.deepEqual(parsed.attachments[0]?.content, pdf);
      assert.ok(!got.flags.has('\\Seen'));
    }
    const sent = await find(ALICE, 'Sent Items', subject);
    assert.ok(sent, 'saved to Sent Items');
    assert.ok(sent.flags.has('\\Seen'));
    assert.match(sent.source.toString('latin1'), new RegExp(`^Bcc: ${DAVE}\\r$`, 'im'), 'the sender keeps the Bcc');
    assert.equal(await count(ALICE, 'Sent Items'), sentBefore + 1);
    const record = rig.graph.stats.sent.find((s) => s.to.includes(BOB) && s.bcc.includes(DAVE));
    assert.ok(record);
    assert.deepEqual([...record.delivered].sort(), [BOB, DAVE, INFO].sort());
  });

  test('saveToSentItems: false leaves Sent Items alone', async () => {
    const subject = `nosave ${randomUUID()}`;
    const before = await count(ALICE, 'Sent Items');
    const res = await rig.call('POST', SEND, { token: await rig.appToken(APP.relay), json: { message: { subject, toRecipients: to(BOB) }, saveToSentItems: false } });
    assert.equal(res.status, 202, res.text);
    assert.ok(await find(BOB, 'INBOX', subject));
    assert.equal(await count(ALICE, 'Sent Items'), before);
    assert.equal(await find(ALICE, 'Sent Items', subject), undefined);
  });

  test('property names are matched case-insensitively, as Graph does (PascalCase samples)', async () => {
    const subject = `pascal ${randomUUID()}`;
    const res = await rig.call('POST', SEND, {
      token: await rig.appToken(APP.relay),
      json: { Message: { Subject: subject, Body: { ContentType: 'Text', Content: 'plain' }, ToRecipients: [{ EmailAddress: { Address: BOB } }] } },
    });
    assert.equal(res.status, 202, res.text);
    const got = await find(BOB, 'INBOX', subject);
    assert.ok(got);
    assert.match(got.source.toString('utf8'), /\r\n\r\nplain/);
  });

  test('recipients outside the sandbox are recorded, not delivered', async () => {
    const subject = `outbound ${randomUUID()}`;
    const res = await rig.call('POST', SEND, { token: await rig.appToken(APP.relay), json: { message: { subject, toRecipients: to('someone@example.com', BOB) } } });
    assert.equal(res.status, 202, res.text);
    const out = rig.graph.stats.outbound.find((o) => o.raw.toString('utf8').includes(subject));
    assert.ok(out);
    assert.deepEqual(out.to, ['someone@example.com']);
    assert.equal(out.from, ALICE);
    assert.ok(await find(BOB, 'INBOX', subject), 'the sandbox recipient still gets it');
  });

  test('no recipients, an invalid recipient, a non-x- header, bad JSON, an empty body: 400 with Graph codes', async () => {
    const token = await rig.appToken(APP.relay);
    expectError(
      await rig.call('POST', SEND, { token, json: { message: { subject: 'none' } } }),
      400,
      'ErrorInvalidRecipients',
      "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
    );
    expectError(
      await rig.call('POST', SEND, { token, json: { message: { toRecipients: to('not-an-address') } } }),
      400,
      'ErrorInvalidRecipients',
      "At least one recipient isn't valid., Recipient 'not-an-address' is not resolved. All recipients must be resolved before a message can be submitted.",
    );
    expectError(
      await rig.call('POST', SEND, { token, json: { message: { toRecipients: to(BOB), internetMessageHeaders: [{ name: 'Reply-To', value: 'x@y.z' }] } } }),
      400,
      'InvalidInternetMessageHeader',
      "The internet message header name 'Reply-To' should start with 'x-' or 'X-'.",
    );
    expectError(
      await rig.call('POST', SEND, { token, body: '{"message": {', headers: { 'content-type': 'application/json' } }),
      400,
      'BadRequest',
      'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
    );
    expectError(await rig.call('POST', SEND, { token, body: '', headers: { 'content-type': 'application/json' } }), 400, 'BadRequest', 'Empty Payload. JSON content expected.');
    const unsupported = await rig.call('POST', SEND, {
      token,
      json: { message: { toRecipients: to(BOB), attachments: [{ '@odata.type': '#microsoft.graph.itemAttachment', name: 'x' }] } },
    });
    assert.equal(unsupported.status, 400);
    assert.equal(graphError(unsupported).code, 'ErrorInvalidRequest');
  });
});

describe('sendMail, MIME form', () => {
  test('text/plain base64: delivered byte for byte (after the Return-Path LMTP adds); Sent Items keeps it exactly', async () => {
    const subject = `mime ${randomUUID()}`;
    const raw = Buffer.from(
      rfc822({ from: ALICE, to: BOB, subject, body: 'Zeile 1 mit Umlauten: äöü\r\n\r\n  indented line\r\n.\r\nlast line', extra: 'X-Odd-Header:   keep   spacing  \r\n' }),
      'utf8',
    );
    const res = await rig.call('POST', SEND, { token: await rig.appToken(APP.relay), body: raw.toString('base64'), headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.body.length, 0);
    const got = await find(BOB, 'INBOX', subject);
    assert.ok(got);
    assert.deepEqual(got.source, Buffer.concat([Buffer.from(`Return-Path: <${ALICE}>\r\n`), raw]));
    const sent = await find(ALICE, 'Sent Items', subject);
    assert.ok(sent);
    assert.deepEqual(sent.source, raw);
  });

  test('base64 may be wrapped in lines (whitespace is ignored)', async () => {
    const subject = `wrapped ${randomUUID()}`;
    const raw = Buffer.from(rfc822({ from: ALICE, to: BOB, subject }));
    const wrapped = raw.toString('base64').replace(/.{76}/g, '$&\r\n');
    const res = await rig.call('POST', SEND, { token: await rig.appToken(APP.relay), body: wrapped, headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 202, res.text);
    assert.deepEqual((await find(BOB, 'INBOX', subject))?.source, Buffer.concat([Buffer.from(`Return-Path: <${ALICE}>\r\n`), raw]));
  });

  test('a Bcc header: the Bcc recipient gets the message, nobody sees the Bcc line; everything else stays byte for byte', async () => {
    const subject = `mime-bcc ${randomUUID()}`;
    const raw = Buffer.from(rfc822({ from: ALICE, to: BOB, subject, extra: `Bcc: Dave Delegate\r\n <${DAVE}>\r\n` }));
    const res = await rig.call('POST', SEND, { token: await rig.appToken(APP.relay), body: raw.toString('base64'), headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 202, res.text);
    const withoutBcc = Buffer.from(raw.toString('latin1').replace(`Bcc: Dave Delegate\r\n <${DAVE}>\r\n`, ''), 'latin1');
    for (const rcpt of [BOB, DAVE]) {
      const got = await find(rcpt, 'INBOX', subject);
      assert.ok(got, `delivered to ${rcpt}`);
      assert.deepEqual(got.source, Buffer.concat([Buffer.from(`Return-Path: <${ALICE}>\r\n`), withoutBcc]));
    }
    assert.deepEqual((await find(ALICE, 'Sent Items', subject))?.source, raw, 'Sent Items keeps the Bcc');
  });

  test('not base64: 400 ErrorMimeContentInvalidBase64String', async () => {
    const token = await rig.appToken(APP.relay);
    for (const body of ['From: alice@contoso.test\r\nTo: bob@contoso.test\r\n\r\nraw, not base64', 'QUJD=A', '']) {
      const res = await rig.call('POST', SEND, { token, body, headers: { 'content-type': 'text/plain' } });
      expectError(res, 400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
    }
  });

  test('over 4 MB: 413 "The maximum request length supported is 4MB."', async () => {
    const big = Buffer.concat([Buffer.from(rfc822({ from: ALICE, to: BOB, subject: 'big' })), Buffer.alloc(3_200_000, 'a')]);
    const body = big.toString('base64');
    assert.ok(body.length > 4 * 1024 * 1024);
    const res = await rig.call('POST', SEND, { token: await rig.appToken(APP.relay), body, headers: { 'content-type': 'text/plain' } });
    expectError(res, 413, 'BadRequest', 'The maximum request length supported is 4MB.');
    assert.match(res.headers.get('request-id') ?? '', /^[0-9a-f-]{36}$/);
  });
});

describe('send-as', () => {
  const denied = (res: Response) =>
    expectError(
      res,
      403,
      'ErrorSendAsDenied',
      'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.',
    );

  test("From another user's mailbox without SendAs: 403 ErrorSendAsDenied (JSON and MIME)", async () => {
    const token = await rig.appToken(APP.relay);
    denied(await rig.call('POST', SEND, { token, json: { message: { from: { emailAddress: { address: BOB } }, toRecipients: to(DAVE) } } }));
    const raw = Buffer.from(rfc822({ from: BOB, to: DAVE, subject: 'spoof' }));
    denied(await rig.call('POST', SEND, { token, body: raw.toString('base64'), headers: { 'content-type': 'text/plain' } }));
    denied(await rig.call('POST', SEND, { token, json: { message: { from: { emailAddress: { address: 'ceo@example.com' } }, toRecipients: to(DAVE) } } }));
  });

  test('From a shared mailbox that granted SendAs (to the app, or to the mailbox in the path): 202', async () => {
    const subject = `sendas ${randomUUID()}`;
    const res = await rig.call('POST', SEND, {
      token: await rig.appToken(APP.relay),
      json: { message: { subject, from: { emailAddress: { address: INFO, name: 'Contoso Info' } }, toRecipients: to(BOB) } },
    });
    assert.equal(res.status, 202, res.text);
    const parsed = await simpleParser((await find(BOB, 'INBOX', subject))?.source ?? Buffer.alloc(0));
    assert.equal(parsed.from?.value[0]?.address, INFO);

    const subject2 = `sendas-delegated ${randomUUID()}`;
    const alice = await rig.userToken(USER.alice, 'Mail.Send');
    const res2 = await rig.call('POST', '/v1.0/me/sendMail', { token: alice, json: { message: { subject: subject2, from: { emailAddress: { address: INFO } }, toRecipients: to(BOB) } } });
    assert.equal(res2.status, 202, res2.text);
    assert.ok(await find(BOB, 'INBOX', subject2));
    assert.ok(await find(ALICE, 'Sent Items', subject2), 'the copy goes to the Sent Items of the mailbox in the path');
  });
});

describe('across protocols', () => {
  test('mail sent through Graph is read through the Exchange Online IMAP front', async () => {
    const subject = `via-imap-front ${randomUUID()}`;
    const res = await rig.call('POST', SEND, { token: await rig.appToken(APP.relay), json: { message: { subject, toRecipients: to(BOB) } } });
    assert.equal(res.status, 202, res.text);

    // The IMAP front verifies Exchange tokens with its own JWKS here.
    const signer = await generateKeyPair('RS256');
    const jwks = { keys: [{ ...(await exportJWK(signer.publicKey)), kid: 'exo', alg: 'RS256', use: 'sig' }] };
    const front = await startImapFront({ directory: rig.directory, jwks, tls: rig.tls, dovecot: rig.dovecot });
    const now = Math.floor(Date.now() / 1000);
    const exoToken = await new SignJWT({
      aud: 'https://outlook.office365.com',
      iss: `https://sts.windows.net/${T.contoso}/`,
      tid: T.contoso,
      appid: APP.relay.appId,
      oid: APP.relay.sp,
      roles: ['IMAP.AccessAsApp'],
      ver: '1.0',
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'exo' })
      .setIssuedAt(now - 300)
      .setExpirationTime(now + 3600)
      .sign(signer.privateKey);
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: front.port,
      secure: true,
      tls: { ca: [rig.ca.certPem], servername: 'localhost' },
      auth: { user: BOB, accessToken: exoToken },
      logger: false,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.mailboxOpen('INBOX');
      const uids = (await client.search({ header: { subject } }, { uid: true })) || [];
      assert.equal(uids.length, 1);
    } finally {
      await client.logout().catch(() => client.close());
      await front.close();
    }
  });
});
