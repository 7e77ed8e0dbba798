/**
 * Routing and sender rules without servers: which route a message takes (sender address or domain,
 * relay user, first match wins, reports routed by their mailbox, the account of a delegated
 * connection as default mailbox), what the sender rules decide, the route schema's refusals, and the
 * header edits byte for byte (From rewrite with Reply-To; To/Cc/Bcc aligned with the envelope).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relaySchema } from '../../../src/relay/config.ts';
import { Router, routeSchema, senderDecision, type RouteConfig } from '../../../src/relay/routing.ts';
import { alignRecipients, rewriteSender } from '../../../src/relay/transports/headers.ts';

const route = (r: Record<string, unknown>): RouteConfig => routeSchema.parse({ connection: 'app', ...r });
const connections = {
  app: { flow: 'client-credentials' as const },
  user: { flow: 'auth-code' as const, account: 'Alice@Contoso.com' },
};

test('first matching route wins; senders by address or domain; users by relay user', () => {
  const router = new Router(
    [
      route({ name: 'erp', users: ['erp'], mailbox: 'erp@contoso.com' }),
      route({ name: 'exact', senders: ['ceo@contoso.com'], transport: 'graph' }),
      route({ name: 'domain', senders: ['@contoso.com', '@fabrikam.com'], mailbox: 'noreply@contoso.com' }),
    ],
    connections,
  );
  assert.equal(router.resolve({ sender: 'anything@else.org', relayUser: 'erp' })?.name, 'erp');
  assert.equal(router.resolve({ sender: 'CEO@Contoso.com' })?.name, 'exact');
  assert.equal(router.resolve({ sender: 'ceo@contoso.com' })?.mailbox, 'ceo@contoso.com', 'default mailbox: the sender');
  assert.equal(router.resolve({ sender: 'x@fabrikam.com', relayUser: 'scanner' })?.mailbox, 'noreply@contoso.com');
  assert.equal(router.resolve({ sender: 'x@other.org', relayUser: 'scanner' }), undefined);
  assert.equal(router.mailboxFor({ sender: 'X@Other.org' }), 'x@other.org', 'no route: the sender is the pacing key');
});

test('reports (null sender) are routed by their mailbox; user-only routes do not take them', () => {
  const router = new Router([route({ name: 'users', users: ['erp'] }), route({ name: 'contoso', senders: ['@contoso.com'] })], connections);
  assert.equal(router.resolve({ sender: '', mailbox: 'bounces@contoso.com' })?.name, 'contoso');
  assert.equal(router.resolve({ sender: '', mailbox: 'bounces@contoso.com' })?.mailbox, 'bounces@contoso.com');
  assert.equal(router.resolve({ sender: '', mailbox: 'x@elsewhere.org' }), undefined);
  const byMailbox = new Router([route({ name: 'erp', users: ['erp'], mailbox: 'ERP@contoso.com' })], connections);
  assert.equal(byMailbox.resolve({ sender: '', mailbox: 'erp@contoso.com' })?.name, 'erp', 'the report of a user route goes out through its mailbox');
});

test('a delegated connection sends as its signed-in account unless the route names a mailbox', () => {
  const router = new Router([route({ connection: 'user' })], connections);
  assert.equal(router.resolve({ sender: 'app@contoso.com' })?.mailbox, 'alice@contoso.com');
});

test('sender rules: none → Exchange decides; sendAs checks envelope and From; rewriteFrom rewrites instead of refusing', () => {
  const r = new Router([route({ mailbox: 'scanner@contoso.com', sendAs: ['@contoso.com'] })], connections).resolve({ sender: 'a@contoso.com' })!;
  assert.deepEqual(senderDecision(r, 'a@contoso.com', ['b@contoso.com']), { kind: 'ok' });
  assert.deepEqual(senderDecision(r, 'a@contoso.com', ['evil@elsewhere.org']), { kind: 'refuse', address: 'evil@elsewhere.org', allowed: 'scanner@contoso.com, @contoso.com' });
  const open = new Router([route({ mailbox: 'scanner@contoso.com' })], connections).resolve({ sender: 'x@y.org' })!;
  assert.deepEqual(senderDecision(open, 'x@y.org', ['z@y.org']), { kind: 'ok' });
  const rw = new Router([route({ mailbox: 'scanner@contoso.com', rewriteFrom: true })], connections).resolve({ sender: 'erp@legacy.local' })!;
  assert.deepEqual(senderDecision(rw, 'erp@legacy.local', ['erp@legacy.local']), { kind: 'rewrite', to: 'scanner@contoso.com', addresses: ['erp@legacy.local'] });
  assert.deepEqual(senderDecision(rw, '', ['scanner@contoso.com']), { kind: 'ok' }, 'null sender: only From is checked');
  const to = new Router([route({ mailbox: 'scanner@contoso.com', rewriteFrom: 'noreply@contoso.com' })], connections).resolve({ sender: 'x@y.org' })!;
  assert.equal((senderDecision(to, 'x@y.org', []) as { to: string }).to, 'noreply@contoso.com');
});

test('route schema: defaults, Exchange limits, and the settings Graph cannot honour are refused with a reason', () => {
  const r = route({});
  assert.equal(r.transport, 'smtp');
  assert.equal(r.smtp.port, 587);
  assert.equal(r.smtp.maxConnections, 3);
  assert.equal(r.graph.saveToSentItems, true);
  assert.equal(r.graph.fallback, 'none');
  assert.equal(routeSchema.safeParse({ connection: 'a', smtp: { maxConnections: 4 } }).success, false, 'Exchange allows 3 connections per mailbox');
  assert.equal(routeSchema.safeParse({ connection: 'a', graph: { saveToSentItems: false } }).success, false, 'MIME sendMail always saves');
  assert.equal(routeSchema.safeParse({ connection: 'a', rewriteFrom: true }).success, false, 'rewriteFrom: true needs a mailbox');
  assert.equal(routeSchema.safeParse({ connection: 'a', senders: ['not-an-address'] }).success, false);
  assert.deepEqual(relaySchema.parse({}).routes, [], 'relay.routes defaults to none');
});

test('rewriteSender keeps every other byte; Reply-To is added only when missing; Sender goes', () => {
  const raw = Buffer.from('Received: x\r\nFrom: =?utf-8?q?J=C3=BCrgen?= <erp@legacy.local>\r\nSender: erp@legacy.local\r\nSubject: t\r\n\r\n.body\r\n', 'utf8');
  const out = rewriteSender(raw, 'scanner@contoso.com', ['erp@legacy.local']);
  assert.equal(
    out.raw.toString('utf8'),
    'Received: x\r\nFrom: =?utf-8?q?J=C3=BCrgen?= <scanner@contoso.com>\r\nReply-To: =?utf-8?q?J=C3=BCrgen?= <erp@legacy.local>\r\nSubject: t\r\n\r\n.body\r\n',
  );
  const kept = rewriteSender(Buffer.from('From: a@x.org\r\nReply-To: desk@x.org\r\n\r\nb'), 'm@c.com', ['a@x.org']);
  assert.equal(kept.raw.toString(), 'From: m@c.com\r\nReply-To: desk@x.org\r\n\r\nb');
  assert.equal(kept.replyToAdded, false);
  const latin1 = Buffer.concat([Buffer.from('From: "M'), Buffer.from([0xfc]), Buffer.from('ller" <m@x.org>\r\n\r\n'), Buffer.from([0xe4, 0x0d, 0x0a])]);
  const l = rewriteSender(latin1, 'n@c.com', ['m@x.org']).raw;
  assert.equal(l.subarray(0, 17).toString('latin1'), 'From: "Müller" <n');
  assert.deepEqual([...l.subarray(-3)], [0xe4, 0x0d, 0x0a], '8-bit bytes survive');
});

test('alignRecipients: BCC into one Bcc field, foreign Bcc dropped, To/Cc outside the envelope reported or removed', () => {
  const raw = Buffer.from('From: s@c.com\r\nTo: "Doe, J" <j@c.com>, k@c.com\r\nCc: list:l1@c.com, l2@c.com;\r\nBcc: old@c.com\r\nSubject: s\r\n\r\nbody\r\n');
  const report = alignRecipients(raw, ['j@c.com', 'hidden@c.com', 'l1@c.com'], false);
  assert.deepEqual(report.bcc, ['hidden@c.com']);
  assert.deepEqual(report.headerOnly, ['k@c.com', 'l2@c.com']);
  assert.equal(
    report.raw.toString(),
    'From: s@c.com\r\nTo: "Doe, J" <j@c.com>, k@c.com\r\nCc: list:l1@c.com, l2@c.com;\r\nSubject: s\r\nBcc: hidden@c.com\r\n\r\nbody\r\n',
  );
  const removed = alignRecipients(raw, ['j@c.com', 'l1@c.com'], true);
  assert.equal(removed.raw.toString(), 'From: s@c.com\r\nTo: "Doe, J" <j@c.com>\r\nCc: list:l1@c.com;\r\nSubject: s\r\n\r\nbody\r\n');
  const same = Buffer.from('To: a@c.com\r\n\r\nx');
  assert.equal(alignRecipients(same, ['A@c.com'], true).raw, same, 'nothing to change: the same buffer');
  const many = alignRecipients(Buffer.from('To: a@c.com\r\n\r\nx'), Array.from({ length: 8 }, (_, i) => `recipient-number-${i}@contoso.example`), false);
  for (const line of many.raw.toString().split('\r\n')) assert.ok(line.length <= 78, `folded: ${line}`);
});
