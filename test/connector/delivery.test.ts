/**
 * End to end against a real Dovecot: messages put into a source mailbox with IMAP APPEND (stored byte
 * for byte) arrive at every destination kind exactly once and unchanged, and the after-delivery
 * action (seen, move, delete, none) happens only for what the destination acknowledged. A second run
 * delivers nothing again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runConnector, type RunSummary } from '../../src/connector/index.ts';
import { verifySignature, type HttpMessageBody } from '../../src/connector/destinations/index.ts';
import type { ConnectorInput } from '../../src/connector/config.ts';
import { append, connectorConfig, events, folderContents, maildirFiles, makeMessage, startCapture, startRig, tempStore, type Rig } from './helpers.ts';
import { tempDir } from '../support/temp.ts';
import { forFile } from '../support/rig.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;

forFile(async () => (rig = await startRig()));
forFile(async () => (st = await tempStore()));

async function run(name: string, input: Partial<ConnectorInput> & Pick<ConnectorInput, 'destination' | 'mailboxes'>): Promise<RunSummary> {
  const ev = events();
  const summary = await runConnector({ plugins: connectorPlugins, name, config: connectorConfig(rig, input), repo: st.store.checkpoints, tokens: rig.tokens, onEvent: ev.on }, { once: true });
  assert.deepEqual(
    summary.errors.map((e) => e.error.code),
    [],
    summary.errors.map((e) => e.error.message).join('\n'),
  );
  return summary;
}

const sorted = (list: Buffer[]) => list.map((b) => b.toString('latin1')).sort();

test('maildir: every message once, byte for byte, source marked \\Seen; a second run delivers nothing', async () => {
  const box = 'maildir-seen@contoso.test';
  const md = tempDir('mb-md-');
  try {
    const msgs = Array.from({ length: 12 }, (_, i) => makeMessage(i, { size: 2000 + i * 500 }));
    await append(rig, box, 'INBOX', msgs);
    const first = await run('md-seen', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } });
    assert.equal(first.delivered, 12);
    const files = maildirFiles(md.path);
    assert.equal(files.length, 12);
    assert.deepEqual(sorted(files.map((f) => f.raw)), sorted(msgs));
    for (const f of files) assert.match(f.name, /^new\/\d+\.[0-9a-f]{32}\.mailbridge$/);
    const src = await folderContents(rig, box, 'INBOX');
    assert.equal(src.length, 12);
    assert.ok(src.every((m) => m.flags.has('\\Seen')));

    await append(rig, box, 'INBOX', [makeMessage(99)]);
    const second = await run('md-seen', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } });
    assert.equal(second.delivered, 1, 'only the new message');
    assert.equal(maildirFiles(md.path).length, 13);
    const third = await run('md-seen', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } });
    assert.equal(third.delivered, 0);
    assert.equal(maildirFiles(md.path).length, 13);
  } finally {
    md.remove();
  }
});

test('LMTP (captured): byte for byte, envelope mapped per mailbox, messages moved to a folder afterwards', async () => {
  const box = 'lmtp-move@contoso.test';
  const cap = await startCapture({ lmtp: true });
  try {
    const msgs = Array.from({ length: 7 }, (_, i) => makeMessage(i, { returnPath: `bounce${i}@outside.example` }));
    await append(rig, box, 'INBOX', msgs);
    const s = await run('lmtp-move', {
      mailboxes: [box],
      destination: { kind: 'lmtp', port: cap.port, tls: 'none', recipients: { map: { [box]: ['scans@intern.example', 'archive@intern.example'] } } },
      after: { action: 'move', folder: 'Processed' },
    });
    assert.equal(s.delivered, 7);
    assert.equal(cap.got.length, 7);
    assert.deepEqual(sorted(cap.got.map((g) => g.raw)), sorted(msgs));
    for (const g of cap.got) {
      assert.deepEqual(g.to, ['scans@intern.example', 'archive@intern.example']);
      assert.match(g.from, /^bounce\d@outside\.example$/, 'envelope sender from Return-Path');
    }
    assert.equal((await folderContents(rig, box, 'INBOX')).length, 0);
    const moved = await folderContents(rig, box, 'Processed');
    assert.deepEqual(sorted(moved.map((m) => m.raw)), sorted(msgs));
    const again = await run('lmtp-move', {
      mailboxes: [box],
      destination: { kind: 'lmtp', port: cap.port, tls: 'none', recipients: { to: ['x@intern.example'] } },
      after: { action: 'move', folder: 'Processed' },
    });
    assert.equal(again.delivered, 0);
    assert.equal(cap.got.length, 7);
  } finally {
    await cap.close();
  }
});

test('LMTP into a real Dovecot mailbox, source messages deleted (expunged) afterwards', async () => {
  const box = 'lmtp-delete@contoso.test';
  const target = 'lmtp-target@contoso.test';
  const msgs = Array.from({ length: 5 }, (_, i) => makeMessage(i, { size: 20_000 }));
  await append(rig, box, 'INBOX', msgs);
  const s = await run('lmtp-delete', {
    mailboxes: [box],
    destination: { kind: 'lmtp', port: rig.dovecot.ports.lmtp, tls: 'none', recipients: { to: [target] } },
    after: { action: 'delete' },
  });
  assert.equal(s.delivered, 5);
  const got = await folderContents(rig, target, 'INBOX');
  assert.equal(got.length, 5);
  // Dovecot, as the final delivery agent, puts its Return-Path line in front; the rest is unchanged.
  const stripped = got.map((m) => {
    const text = m.raw.toString('latin1');
    assert.match(text, /^Return-Path: <sender@outside\.example>\r\n/);
    return Buffer.from(text.slice(text.indexOf('\r\n') + 2), 'latin1');
  });
  assert.deepEqual(sorted(stripped), sorted(msgs));
  assert.equal((await folderContents(rig, box, 'INBOX')).length, 0, 'expunged from the source');
});

test('SMTP (captured) with recipients by domain and an empty envelope sender; after-action none leaves flags alone', async () => {
  const box = 'smtp-none@contoso.test';
  const cap = await startCapture({ lmtp: false });
  try {
    const msgs = Array.from({ length: 4 }, (_, i) => makeMessage(i));
    await append(rig, box, 'INBOX', msgs);
    const s = await run('smtp-none', {
      mailboxes: [box],
      destination: { kind: 'smtp', port: cap.port, tls: 'none', from: 'empty', recipients: { domain: 'intern.example' } },
      after: { action: 'none' },
    });
    assert.equal(s.delivered, 4);
    assert.deepEqual(sorted(cap.got.map((g) => g.raw)), sorted(msgs));
    for (const g of cap.got) {
      assert.deepEqual(g.to, ['smtp-none@intern.example']);
      assert.equal(g.from, '');
    }
    const src = await folderContents(rig, box, 'INBOX');
    assert.ok(src.every((m) => !m.flags.has('\\Seen')), 'no flag set with action none');
    assert.equal((await run('smtp-none', { mailboxes: [box], destination: { kind: 'smtp', port: cap.port, tls: 'none' }, after: { action: 'none' } })).delivered, 0);
  } finally {
    await cap.close();
  }
});

test('HTTP: signed JSON with headers, text, attachment metadata and the raw MIME; 2xx acknowledges', async () => {
  const box = 'http@contoso.test';
  const secret = 'http-test-secret-0123456789';
  const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/inbound`;
  try {
    const withAttachment = Buffer.from(
      [
        'From: Scanner <scanner@contoso.test>',
        'To: <http@contoso.test>',
        'Subject: =?utf-8?Q?Scan_f=C3=BCr_Buchhaltung?=',
        'Message-ID: <scan-1@contoso.test>',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Anbei der Scan.',
        '--b1',
        'Content-Type: application/pdf; name="scan.pdf"',
        'Content-Disposition: attachment; filename="scan.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from('%PDF-1.4 fake pdf').toString('base64'),
        '--b1--',
        '',
      ].join('\r\n'),
      'latin1',
    );
    const plain = makeMessage(2);
    await append(rig, box, 'INBOX', [withAttachment, plain]);
    const s = await run('http', { mailboxes: [box], destination: { kind: 'http', url, secret } });
    assert.equal(s.delivered, 2);
    assert.equal(received.length, 2);
    const bodies = received.map((r) => {
      assert.equal(verifySignature(secret, r.headers['x-mailbridge-signature'] as string, r.body), true, 'signature verifies');
      assert.equal(verifySignature('wrong-secret-value', r.headers['x-mailbridge-signature'] as string, r.body), false);
      const body = JSON.parse(r.body) as HttpMessageBody;
      assert.equal(r.headers['idempotency-key'], body.deliveryId);
      return body;
    });
    const scan = bodies.find((b) => b.messageId === '<scan-1@contoso.test>')!;
    assert.equal(scan.subject, 'Scan für Buchhaltung');
    assert.equal(scan.text?.trim(), 'Anbei der Scan.');
    assert.deepEqual(scan.from, ['scanner@contoso.test']);
    assert.equal(scan.attachments.length, 1);
    assert.equal(scan.attachments[0]!.filename, 'scan.pdf');
    assert.equal(scan.attachments[0]!.contentType, 'application/pdf');
    assert.equal(scan.attachments[0]!.size, '%PDF-1.4 fake pdf'.length);
    assert.ok(scan.headers.some((h) => h.name === 'Subject'));
    assert.deepEqual(Buffer.from(scan.raw!, 'base64'), withAttachment);
    assert.deepEqual(Buffer.from(bodies.find((b) => b !== scan)!.raw!, 'base64'), plain);
    assert.equal(scan.mimeProblem, undefined);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('command: the message on stdin, delivery ID in the environment, exit 0 acknowledges', async () => {
  const box = 'command@contoso.test';
  const out = tempDir('mb-cmd-');
  try {
    const msgs = Array.from({ length: 3 }, (_, i) => makeMessage(i, { size: 70_000 }));
    await append(rig, box, 'INBOX', msgs);
    const s = await run('command', {
      mailboxes: [box],
      destination: { kind: 'command', command: ['sh', '-c', 'cat > "$OUT/$MAILBRIDGE_DELIVERY_ID.$MAILBRIDGE_ITEM.eml"'], env: { OUT: out.path } },
    });
    assert.equal(s.delivered, 3);
    const names = readdirSync(out.path).sort();
    assert.equal(names.length, 3);
    for (const n of names) assert.match(n, /^[0-9a-f]{32}\.\d+\.eml$/);
    assert.deepEqual(sorted(names.map((n) => readFileSync(join(out.path, n)))), sorted(msgs));
    assert.ok((await folderContents(rig, box, 'INBOX')).every((m) => m.flags.has('\\Seen')));
  } finally {
    out.remove();
  }
});

test('several mailboxes and folders of one connector, shared and user mailboxes alike, each folder once', async () => {
  const md = tempDir('mb-md-multi-');
  try {
    const boxes = ['multi-a@contoso.test', 'multi-b@contoso.test', 'multi-shared@contoso.test'];
    const expected: Buffer[] = [];
    for (const b of boxes) {
      const inbox = [makeMessage(1, { to: b }), makeMessage(2, { to: b })];
      const scans = [makeMessage(3, { to: b })];
      await append(rig, b, 'INBOX', inbox);
      await append(rig, b, 'Scans', scans);
      expected.push(...inbox, ...scans);
    }
    const s = await run('multi', {
      mailboxes: [boxes[0]!, { address: boxes[1]!, folders: ['INBOX', 'Scans'] }, { address: boxes[2]!, folders: ['Scans', 'INBOX'] }],
      folders: ['INBOX', 'Scans'],
      destination: { kind: 'maildir', path: md.path },
    });
    assert.equal(s.delivered, 9);
    assert.deepEqual(sorted(maildirFiles(md.path).map((f) => f.raw)), sorted(expected));
    const list = await st.store.checkpoints.list('multi');
    assert.equal(list.length, 6);
    assert.ok(list.every((c) => c.inFlight === 0 && c.rejected === 0));
  } finally {
    md.remove();
  }
});
