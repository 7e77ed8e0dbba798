/**
 * The connector's parts on their own: the checkpoint repository (SQLite, across reopen), message
 * keys and the MIME check, HTTP signature and Retry-After, the limits, and the config section.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { connectorSchema, connectorsSchema, mailboxesOf } from '../../src/connector/config.ts';
import { retryAfterMs, signBody, verifySignature } from '../../src/connector/destinations/http.ts';
import { envelopeFrom, recipientsFor } from '../../src/connector/destinations/smtp.ts';
import { Backoff, Semaphore, sleep } from '../../src/util/limits.ts';
import { deliveryIdOf, messageIdOf, messageKey, mimeProblem } from '../../src/connector/message.ts';
import { ConnectorError } from '../../src/connector/types.ts';
import { configSchema } from '../../src/app/schema.ts';
import { secretPatterns } from '../../src/app/config.ts';
import { catalogue } from '../../src/errors/index.ts';
import { openStore } from '../../src/store/index.ts';
import { tempDir } from '../support/temp.ts';

test('checkpoints: epoch, in-flight, outcomes and position survive reopen; keys of earlier epochs are found; leases exclude', async () => {
  const dir = tempDir('mb-cp-');
  const path = `${dir.path}/mb.db`;
  try {
    const scope = { connector: 'c', mailbox: 'a@contoso.test', folder: 'INBOX' };
    let store = await openStore({ driver: 'sqlite', path });
    const cp = store.checkpoints;
    assert.equal(await cp.get(scope), undefined);
    await cp.setEpoch(scope, '100', 0);
    await cp.begin(scope, { epoch: '100', item: '1', key: '<a@x>', deliveryId: 'd1' });
    await cp.begin(scope, { epoch: '100', item: '2', key: '<b@x>', deliveryId: 'd2' });
    await cp.record(scope, { epoch: '100', item: '1', key: '<a@x>', state: 'delivered', size: 10 }, { position: 1 });
    await cp.record(scope, { epoch: '100', item: '3', key: '<c@x>', state: 'rejected', code: 'MB_CONNECTOR_DEST_REJECTED', size: 5 });
    await cp.advance(scope, { position: 0 });
    await store.close();

    store = await openStore({ driver: 'sqlite', path });
    const c2 = store.checkpoints;
    const got = (await c2.get(scope))!;
    assert.equal(got.epoch, '100');
    assert.equal(got.position, 1, 'the position never moves back');
    assert.deepEqual((await c2.inFlight(scope)).map((e) => [e.item, e.deliveryId]), [['2', 'd2']]);
    assert.deepEqual([...(await c2.lookup(scope, '100', ['1', '2', '3'])).keys()].sort(), ['1', '3']);
    assert.deepEqual((await c2.byState(scope, '100', 'delivered')).map((r) => r.item), ['1']);
    await c2.markDone(scope, '100', ['1']);
    assert.deepEqual(await c2.byState(scope, '100', 'delivered'), []);
    assert.equal((await c2.byState(scope, '100', 'rejected'))[0]!.code, 'MB_CONNECTOR_DEST_REJECTED');

    // A new epoch: position 0, old in-flight entries gone, old keys found from the new epoch only.
    await c2.setEpoch(scope, '200', 50);
    assert.deepEqual(await c2.inFlight(scope), []);
    assert.equal((await c2.get(scope))!.dedupeBelow, 50);
    assert.deepEqual([...(await c2.deliveredKeys(scope, ['<a@x>', '<c@x>', '<z@x>'], '200'))], ['<a@x>'], 'refused messages are not "delivered"');
    assert.deepEqual([...(await c2.deliveredKeys(scope, ['<a@x>'], '100'))], []);
    const listed = await c2.list('c');
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.delivered, 1);
    assert.equal(listed[0]!.rejected, 1);
    assert.equal(await c2.prune(scope, new Date(Date.now() + 1000), ['done']), 1);

    assert.deepEqual(await c2.claim('lease', 'me', 60_000), { ok: true });
    const other = await c2.claim('lease', 'you', 60_000);
    assert.equal(other.ok, false);
    assert.deepEqual(await c2.claim('lease', 'you', 60_000, (owner) => owner === 'me'), { ok: true }, 'taken over from a dead owner');
    await c2.release('lease', 'you');
    assert.deepEqual(await c2.claim('lease', 'me', 60_000), { ok: true });
    await store.close();

    const raw = new DatabaseSync(path);
    const ids = (raw.prepare('SELECT id FROM migrations').all() as Array<{ id: string }>).map((r) => r.id);
    assert.ok(ids.includes('connector-1'));
    raw.close();
  } finally {
    dir.remove();
  }
});

test('message keys, delivery IDs and the MIME check', () => {
  const m = Buffer.from('Received: x\r\nMessage-ID:\r\n  <folded@example.test>\r\nSubject: s\r\n\r\nbody\r\n');
  assert.equal(messageIdOf(m), '<folded@example.test>');
  assert.equal(messageKey(m), '<folded@example.test>');
  const noId = Buffer.from('Subject: s\r\n\r\nbody\r\n');
  assert.match(messageKey(noId), /^sha256:[0-9a-f]{64}$/);
  assert.equal(messageKey(noId), messageKey(Buffer.from(noId)));
  const scope = { connector: 'c', mailbox: 'A@Contoso.test', folder: 'INBOX' };
  assert.equal(deliveryIdOf(scope, '7', '12'), deliveryIdOf({ ...scope, mailbox: 'a@contoso.test' }, '7', '12'));
  assert.notEqual(deliveryIdOf(scope, '7', '12'), deliveryIdOf(scope, '8', '12'));
  assert.equal(mimeProblem(m), undefined);
  assert.equal(mimeProblem(Buffer.alloc(0)), 'empty message');
  assert.equal(mimeProblem(Buffer.from('Subject: a\r\nbroken line\r\n\r\nx')), 'header line 2 is not "Name: value"');
  assert.equal(mimeProblem(Buffer.from('Content-Type: multipart/mixed\r\n\r\nx')), 'multipart without boundary');
  assert.equal(mimeProblem(Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nx\r\n')), 'multipart boundary "b" is never closed');
  assert.equal(mimeProblem(Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n')), undefined);
  assert.equal(mimeProblem(Buffer.from('Subject: a\n\nbare LF is fine\n')), undefined);
});

test('envelope: recipients by map, list, domain or the mailbox; sender from Return-Path or From', () => {
  assert.deepEqual(recipientsFor({ map: { 'A@x.test': ['m@in'] }, to: ['t@in'] }, 'a@x.test'), ['m@in']);
  assert.deepEqual(recipientsFor({ to: ['t@in'] }, 'a@x.test'), ['t@in']);
  assert.deepEqual(recipientsFor({ domain: 'intern.example' }, 'scans@x.test'), ['scans@intern.example']);
  assert.deepEqual(recipientsFor({}, 'scans@x.test'), ['scans@x.test']);
  const raw = Buffer.from('Return-Path: <>\r\nFrom: "Name, Inc." <f@x.test>\r\n\r\n');
  assert.equal(envelopeFrom('return-path', raw), '');
  assert.equal(envelopeFrom('return-path', Buffer.from('From: "Name, Inc." <f@x.test>\r\n\r\n')), 'f@x.test');
  assert.equal(envelopeFrom('empty', raw), '');
  assert.equal(envelopeFrom('relay@intern.example', raw), 'relay@intern.example');
});

test('HTTP signature and Retry-After', () => {
  const sig = signBody('k3y-secret', '{"a":1}', 1_800_000_000);
  assert.equal(verifySignature('k3y-secret', sig, '{"a":1}', { now: 1_800_000_100 }), true);
  assert.equal(verifySignature('k3y-secret', sig, '{"a":2}', { now: 1_800_000_100 }), false);
  assert.equal(verifySignature('k3y-secret', sig, '{"a":1}', { now: 1_800_001_000 }), false, 'too old');
  assert.equal(verifySignature('k3y-secret', undefined, '{"a":1}'), false);
  assert.equal(retryAfterMs('7', 0), 7000);
  assert.equal(retryAfterMs(new Date(60_000).toUTCString(), 0), 60_000);
  assert.equal(retryAfterMs(null, 0), undefined);
});

test('limits: the semaphore never exceeds its limit and hands slots on in order; backoff doubles to its cap', async () => {
  const s = new Semaphore(3);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      s.with(async () => {
        active++;
        peak = Math.max(peak, active);
        order.push(i);
        await sleep(1);
        active--;
      }),
    ),
  );
  assert.equal(peak, 3);
  assert.deepEqual(order, [...order].sort((a, b) => a - b));
  assert.equal(s.inUse, 0);
  const aborted = new AbortController();
  await s.acquire();
  await s.acquire();
  await s.acquire();
  const waiting = s.acquire(aborted.signal);
  aborted.abort(new Error('stop'));
  await assert.rejects(waiting, /stop/);
  const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000]);
});

test('config: defaults, one-line registration in the root schema, secrets marked, mailbox entries with own folders', () => {
  const c = connectorSchema.parse({ connection: 'contoso', mailboxes: ['a@x.test', { address: 'b@x.test', folders: ['Inbox/Scans'] }], destination: { kind: 'lmtp' } });
  assert.deepEqual(c.source, { kind: 'imap', port: 993, tls: 'implicit', idle: true, idleRestartSeconds: 600 });
  assert.deepEqual(c.after, { action: 'seen' });
  assert.equal(c.destination.kind === 'lmtp' && c.destination.port, 24);
  assert.deepEqual(mailboxesOf(c), [
    { address: 'a@x.test', folders: ['INBOX'] },
    { address: 'b@x.test', folders: ['Inbox/Scans'] },
  ]);
  assert.equal(c.concurrency.sessionsPerMailbox, 4);
  assert.throws(() => connectorSchema.parse({ connection: 'c', mailboxes: [], destination: { kind: 'maildir', path: '/x' } }));
  assert.throws(() => connectorSchema.parse({ connection: 'c', mailboxes: ['a@x'], destination: { kind: 'ftp' } }));
  assert.throws(() => connectorSchema.parse({ connection: 'c', mailboxes: ['a@x'], destination: { kind: 'maildir', path: '/x' }, concurrency: { sessionsPerMailbox: 50 } }));
  const root = configSchema.parse({ connectors: { scans: { connection: 'c', mailboxes: ['a@x.test'], destination: { kind: 'http', url: 'https://dms.example/in', secret: 'enc:v1:abc' } } } });
  assert.equal(root.connectors?.scans?.destination.kind, 'http');
  assert.equal(configSchema.parse({}).connectors, undefined);
  const schema = JSON.stringify(connectorsSchema.toJSONSchema());
  assert.match(schema, /"secret":true/);
  // `mailbridge secret set` and `config check` find the connector secrets by their mark.
  const patterns = secretPatterns();
  assert.ok(patterns.some((p) => /^connectors\.<name>\.destination\.secret$/.test(p)), patterns.join(' '));
  assert.ok(patterns.some((p) => /^connectors\.<name>\.destination\.auth\.pass$/.test(p)), patterns.join(' '));
});

test('every connector catalogue entry explains itself in both languages', () => {
  const codes = Object.keys(catalogue).filter((c) => c.startsWith('MB_CONNECTOR_'));
  assert.ok(codes.length >= 20);
  for (const code of codes) {
    const e = new ConnectorError(code as keyof typeof catalogue, {});
    for (const lang of ['en', 'de'] as const) {
      const x = e.explain(lang);
      assert.ok(x.title && x.cause && x.fix, `${code} ${lang}`);
    }
  }
});
