/**
 * Bad input and failing destinations against a real Dovecot: each case ends with a clear MB code and
 * nothing lost. Malformed MIME is handed on byte for byte with a warning; a 50 MB message goes
 * through; a message over the size limit, and one a destination refuses for good, stay in the
 * mailbox untouched until `--retry-rejected`; an unreachable or deferring destination keeps the
 * message and gets it once it answers again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { runConnector, type RunOptions, type RunSummary } from '../../src/connector/index.ts';
import type { HttpMessageBody } from '../../src/connector/destinations/index.ts';
import type { ConnectorInput } from '../../src/connector/config.ts';
import type { ConnectorEvent } from '../../src/connector/types.ts';
import { append, closedPort, connectorConfig, events, folderContents, maildirFiles, makeMessage, startCapture, startRig, tempStore, type Rig } from './helpers.ts';
import { tempDir } from '../support/temp.ts';
import { forFile } from '../support/rig.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;

forFile(async () => (rig = await startRig()));
forFile(async () => (st = await tempStore()));

async function run(
  name: string,
  input: Partial<ConnectorInput> & Pick<ConnectorInput, 'destination' | 'mailboxes'>,
  opts: RunOptions = {},
  onEvent?: (e: ConnectorEvent) => void,
): Promise<{ summary: RunSummary; ev: ReturnType<typeof events> }> {
  const ev = events();
  const summary = await runConnector(
    { plugins: connectorPlugins,
      name,
      config: connectorConfig(rig, input),
      repo: st.store.checkpoints,
      tokens: rig.tokens,
      onEvent: (e) => {
        ev.on(e);
        onEvent?.(e);
      },
    },
    { once: true, ...opts },
  );
  return { summary, ev };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('malformed MIME is delivered unchanged with MB_CONNECTOR_MIME_MALFORMED, to a maildir and over HTTP', async () => {
  const box = 'malformed@contoso.test';
  const broken = [
    // A header line without a colon.
    Buffer.from('From: a@outside.example\r\nThis is not a header\r\nSubject: broken header\r\n\r\nbody\r\n', 'latin1'),
    // A multipart whose boundary never appears.
    Buffer.from('From: a@outside.example\r\nSubject: no boundary\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="zzz"\r\n\r\njust text, no parts\r\n', 'latin1'),
    // An unterminated multipart with 8-bit junk and no Message-ID.
    Buffer.from('From: a@outside.example\r\nSubject: unterminated\r\nContent-Type: multipart/alternative; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\n\xff\xfe\x80 bytes\r\n', 'latin1'),
  ];
  await append(rig, box, 'INBOX', broken);
  const md = tempDir('mb-md-bad-');
  const bodies: HttpMessageBody[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as HttpMessageBody);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const a = await run('bad-md', { mailboxes: [box], destination: { kind: 'maildir', path: md.path }, after: { action: 'none' } });
    assert.equal(a.summary.delivered, 3);
    assert.deepEqual(a.summary.errors, []);
    const warnings = a.ev.of('warning').filter((w) => w.error.code === 'MB_CONNECTOR_MIME_MALFORMED');
    assert.equal(warnings.length, 3);
    assert.match(warnings.map((w) => w.error.explain('en').cause).join('\n'), /header line 2 is not "Name: value"/);
    assert.match(warnings.map((w) => w.error.explain('de').cause).join('\n'), /kein wohlgeformtes MIME/);
    assert.deepEqual(maildirFiles(md.path).map((f) => sha(f.raw)).sort(), broken.map(sha).sort());

    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    const b = await run('bad-http', { mailboxes: [box], destination: { kind: 'http', url, secret: 'abcdefgh-secret' }, after: { action: 'none' } });
    assert.equal(b.summary.delivered, 3);
    assert.equal(bodies.length, 3);
    assert.ok(bodies.every((x) => typeof x.mimeProblem === 'string' && x.mimeProblem.length > 0));
    assert.deepEqual(bodies.map((x) => sha(Buffer.from(x.raw!, 'base64'))).sort(), broken.map(sha).sort());
    // The records keep the warning code for each message.
    const rows = await st.store.checkpoints.byState({ connector: 'bad-md', mailbox: box, folder: 'INBOX' }, (await st.store.checkpoints.get({ connector: 'bad-md', mailbox: box, folder: 'INBOX' }))!.epoch, 'done');
    assert.deepEqual(rows.map((r) => r.code), ['MB_CONNECTOR_MIME_MALFORMED', 'MB_CONNECTOR_MIME_MALFORMED', 'MB_CONNECTOR_MIME_MALFORMED']);
  } finally {
    md.remove();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('a 50 MB message arrives whole; over maxMessageBytes it stays in the mailbox (MB_CONNECTOR_MESSAGE_TOO_LARGE) until --retry-rejected', async () => {
  const box = 'large@contoso.test';
  const big = makeMessage(1, { size: 50 * 1024 * 1024 });
  const small = makeMessage(2);
  await append(rig, box, 'INBOX', [big, small]);
  const md = tempDir('mb-md-big-');
  try {
    const limited = await run('large', { mailboxes: [box], destination: { kind: 'maildir', path: md.path }, maxMessageBytes: 10 * 1024 * 1024 });
    assert.equal(limited.summary.delivered, 1);
    assert.equal(limited.summary.rejected, 1);
    const rej = limited.ev.of('rejected');
    assert.equal(rej.length, 1);
    assert.equal(rej[0]!.error.code, 'MB_CONNECTOR_MESSAGE_TOO_LARGE');
    assert.match(rej[0]!.error.explain('en').fix, /--retry-rejected/);
    let src = await folderContents(rig, box, 'INBOX');
    assert.equal(src.length, 2);
    assert.equal(src.filter((m) => m.flags.has('\\Seen')).length, 1, 'only the delivered one is marked');

    // Without --retry-rejected nothing changes; with it (and the limit raised) the message arrives.
    assert.equal((await run('large', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } })).summary.delivered, 0);
    const retried = await run('large', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } }, { retryRejected: true });
    assert.equal(retried.summary.delivered, 1);
    assert.equal(retried.summary.bytes, big.length);
    const files = maildirFiles(md.path);
    assert.equal(files.length, 2);
    assert.deepEqual(files.map((f) => sha(f.raw)).sort(), [sha(big), sha(small)].sort());
    src = await folderContents(rig, box, 'INBOX');
    assert.ok(src.every((m) => m.flags.has('\\Seen')));
  } finally {
    md.remove();
  }
});

test('an unreachable destination: MB_CONNECTOR_DEST_UNREACHABLE, nothing recorded or marked; delivered once it listens', async () => {
  const box = 'unreachable@contoso.test';
  const msgs = [makeMessage(1), makeMessage(2)];
  await append(rig, box, 'INBOX', msgs);
  const port = await closedPort();
  const down = await run('unreach', { mailboxes: [box], destination: { kind: 'lmtp', port, tls: 'none', recipients: { to: ['x@intern.example'] } } });
  assert.equal(down.summary.delivered, 0);
  assert.equal(down.summary.errors.length, 1);
  assert.equal(down.summary.errors[0]!.error.code, 'MB_CONNECTOR_DEST_UNREACHABLE');
  assert.match(down.summary.errors[0]!.error.explain('de').cause, /bleibt im Postfach/);
  assert.ok(down.ev.of('retry').length >= 2, 'retried with backoff before giving up this run');
  assert.ok((await folderContents(rig, box, 'INBOX')).every((m) => !m.flags.has('\\Seen')));
  const scope = { connector: 'unreach', mailbox: box, folder: 'INBOX' };
  assert.deepEqual(await st.store.checkpoints.inFlight(scope), [], 'a refused connection leaves no in-flight entry');

  const cap = await startCapture({ lmtp: true, port });
  try {
    const up = await run('unreach', { mailboxes: [box], destination: { kind: 'lmtp', port, tls: 'none', recipients: { to: ['x@intern.example'] } } });
    assert.equal(up.summary.delivered, 2);
    assert.equal(up.summary.redelivered, 0);
    assert.equal(cap.got.length, 2);
    assert.ok((await folderContents(rig, box, 'INBOX')).every((m) => m.flags.has('\\Seen')));
  } finally {
    await cap.close();
  }
});

test('a deferring destination (451) is retried with backoff in the same run and gets the message once', async () => {
  const box = 'deferred@contoso.test';
  await append(rig, box, 'INBOX', [makeMessage(1)]);
  const cap = await startCapture({ lmtp: true });
  cap.reply = '451 4.3.0 try again later';
  try {
    const r = await run(
      'deferred',
      { mailboxes: [box], destination: { kind: 'lmtp', port: cap.port, tls: 'none', recipients: { to: ['x@intern.example'] } } },
      { onceAttempts: 10 },
      (e) => {
        if (e.type === 'retry') cap.reply = undefined;
      },
    );
    const retries = r.ev.of('retry');
    assert.equal(retries.length, 1);
    assert.equal(retries[0]!.error.code, 'MB_CONNECTOR_DEST_TEMPFAIL');
    assert.match(retries[0]!.error.message, /451 4\.3\.0 try again later/);
    assert.equal(r.summary.delivered, 1);
    assert.equal(cap.got.length, 1);
  } finally {
    await cap.close();
  }
});

test('a permanent refusal (550, command exit 1, HTTP 422) is recorded with its code; the message stays unread until --retry-rejected', async () => {
  const box = 'refused@contoso.test';
  await append(rig, box, 'INBOX', [makeMessage(1), makeMessage(2)]);
  const cap = await startCapture({ lmtp: true });
  cap.reply = '550 5.1.1 no such user here';
  const dest = { kind: 'lmtp' as const, port: cap.port, tls: 'none' as const, recipients: { to: ['nobody@intern.example'] } };
  try {
    const r = await run('refused', { mailboxes: [box], destination: dest });
    assert.equal(r.summary.rejected, 2);
    assert.equal(r.summary.delivered, 0);
    assert.deepEqual(r.summary.errors, []);
    for (const e of r.ev.of('rejected')) {
      assert.equal(e.error.code, 'MB_CONNECTOR_DEST_REJECTED');
      assert.match(e.error.message, /550 5\.1\.1 no such user here/);
    }
    assert.ok((await folderContents(rig, box, 'INBOX')).every((m) => !m.flags.has('\\Seen')), 'refused messages are not marked');
    assert.equal((await run('refused', { mailboxes: [box], destination: dest })).summary.rejected, 0, 'not retried by itself');

    const cmd = await run('refused-cmd', { mailboxes: [box], destination: { kind: 'command', command: ['sh', '-c', 'cat >/dev/null; echo "no space for $MAILBRIDGE_ITEM" >&2; exit 1'] } });
    assert.equal(cmd.summary.rejected, 2);
    const cmdErr = cmd.ev.of('rejected')[0]!.error;
    assert.equal(cmdErr.code, 'MB_CONNECTOR_COMMAND_FAILED');
    assert.match(cmdErr.message, /ended with exit code 1 for message \d+ of refused@contoso\.test\/INBOX: no space for \d+/);

    const http = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(422, { 'content-type': 'text/plain' }).end('unknown tenant'));
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
    try {
      const h = await run('refused-http', {
        mailboxes: [box],
        destination: { kind: 'http', url: `http://127.0.0.1:${(http.address() as { port: number }).port}/`, secret: 'abcdefgh-secret' },
      });
      assert.equal(h.summary.rejected, 2);
      assert.match(h.ev.of('rejected')[0]!.error.message, /HTTP 422: unknown tenant/);
    } finally {
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }

    cap.reply = undefined;
    const fixed = await run('refused', { mailboxes: [box], destination: dest }, { retryRejected: true });
    assert.equal(fixed.summary.delivered, 2);
    assert.equal(cap.got.length, 2);
    assert.ok((await folderContents(rig, box, 'INBOX')).every((m) => m.flags.has('\\Seen')));
  } finally {
    await cap.close();
  }
});

test('a command asking to retry later (exit 75) keeps the message for the next attempt', async () => {
  const box = 'tempfail@contoso.test';
  await append(rig, box, 'INBOX', [makeMessage(1)]);
  const out = tempDir('mb-cmd75-');
  try {
    const script = 'if [ ! -e "$OUT/once" ]; then touch "$OUT/once"; cat >/dev/null; exit 75; fi; cat > "$OUT/msg.eml"';
    const r = await run('tempfail', { mailboxes: [box], destination: { kind: 'command', command: ['sh', '-c', script], env: { OUT: out.path } } });
    assert.equal(r.ev.of('retry').length, 1);
    assert.equal(r.ev.of('retry')[0]!.error.code, 'MB_CONNECTOR_COMMAND_FAILED');
    assert.equal(r.summary.delivered, 1);
    assert.equal(r.summary.redelivered, 0);
  } finally {
    out.remove();
  }
});
