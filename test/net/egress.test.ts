/**
 * The egress policy for subscribers' URLs (src/net/egress.ts): every internal address class is
 * refused in each spelling (IPv4, IPv6, decimal, hex, IPv4-mapped IPv6, a name that resolves to
 * loopback), credentials in URLs and the gateway's own listeners too; an allow-listed receiver is
 * reached; and a name that resolves to a public address when subscribing but to 127.0.0.1 when
 * connecting (DNS rebinding) is refused at connect time, with nothing reaching the loopback
 * receiver. Through the subscriptions API the refusals are 400s with their MB codes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { MbError } from '../../src/errors/index.ts';
import { EgressPolicy, internalRange, type Lookup } from '../../src/net/egress.ts';
import { registerAdminApi } from '../../src/api/index.ts';
import { configSchema } from '../../src/app/schema.ts';
import { webhookSinkSchema } from '../../src/notify/config.ts';
import { createWebhookSink } from '../../src/notify/sinks/webhook.ts';
import { subscription, tempStore } from '../notify/helpers.ts';

let receiver: Server;
let port: number;
const hits: string[] = [];

before(async () => {
  receiver = createServer((req, res) => {
    hits.push(String(req.url));
    req.resume();
    res.writeHead(204).end();
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  port = (receiver.address() as AddressInfo).port;
});
after(() => {
  receiver.closeAllConnections();
  receiver.close();
});

/** A resolver with fixed answers (and a counter, for rebinding: answers in turn). */
function resolver(table: Record<string, string[] | string[][]>): Lookup {
  const calls = new Map<string, number>();
  return async (name) => {
    const entry = table[name];
    if (!entry) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    const n = calls.get(name) ?? 0;
    calls.set(name, n + 1);
    const answer = Array.isArray(entry[0]) ? (entry as string[][])[Math.min(n, entry.length - 1)]! : (entry as string[]);
    return answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

async function refusedWith(p: Promise<unknown>, code: string): Promise<MbError> {
  let caught: unknown;
  await p.catch((e: unknown) => (caught = e));
  assert.ok(caught instanceof MbError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

test('every internal class is refused at subscription time, in every spelling', async () => {
  const policy = new EgressPolicy({ lookup: resolver({ 'loop.example.net': ['127.0.0.1'], 'meta.example.net': ['93.184.216.34', '169.254.169.254'] }) });
  const refused: Array<[string, string]> = [
    ['http://127.0.0.1/hook', '127.0.0.0/8'],
    ['https://127.8.9.10:8443/', '127.0.0.0/8'],
    ['http://2130706433/hook', '127.0.0.0/8'],
    ['http://0x7f000001/hook', '127.0.0.0/8'],
    ['http://0177.0.0.1/hook', '127.0.0.0/8'],
    ['http://127.1/hook', '127.0.0.0/8'],
    ['https://10.0.0.1/', '10.0.0.0/8'],
    ['https://172.16.5.4/', '172.16.0.0/12'],
    ['https://192.168.1.1/', '192.168.0.0/16'],
    ['https://100.64.1.1/', '100.64.0.0/10'],
    ['https://169.254.169.254/latest/meta-data', '169.254.0.0/16'],
    ['https://0.0.0.0/', '0.0.0.0/8'],
    ['https://224.0.0.251/', '224.0.0.0/4'],
    ['https://255.255.255.255/', '240.0.0.0/4'],
    ['https://[::1]/', '::1/128'],
    ['https://[::]/', '::/128'],
    ['https://[fe80::1]/', 'fe80::/10'],
    ['https://[fd12:3456::1]/', 'fc00::/7'],
    ['https://[ff02::1]/', 'ff00::/8'],
    ['https://[::ffff:127.0.0.1]/', '::ffff:0:0/96'],
    ['https://[::ffff:8.8.8.8]/', '::ffff:0:0/96'],
    ['https://[64:ff9b::7f00:1]/', '64:ff9b::/96'],
    ['https://loop.example.net/hook', '127.0.0.0/8'],
    ['https://meta.example.net/hook', '169.254.0.0/16'],
  ];
  for (const [url, range] of refused) {
    const e = await refusedWith(policy.check(url), 'MB_NOTIFY_EGRESS_REFUSED');
    assert.equal(e.params.range, range, url);
    assert.match(e.explain('de').fix, /notify\.egress\.allow/);
  }
  // The system resolver: localhost is loopback.
  await refusedWith(new EgressPolicy().check('http://localhost:9/'), 'MB_NOTIFY_EGRESS_REFUSED');
  // Credentials in the URL.
  const cred = await refusedWith(policy.check('https://user:geheim@hooks.example.net/'), 'MB_NOTIFY_EGRESS_CREDENTIALS');
  assert.ok(!cred.message.includes('geheim'));
  // Public addresses and names, and a name that does not resolve yet, pass.
  for (const url of ['https://93.184.216.34/hook', 'https://[2606:4700:4700::1111]/hook', 'https://unknown.example.net/hook']) await policy.check(url);
  assert.equal(internalRange('8.8.8.8'), undefined);
});

test('the allow list admits internal receivers by CIDR or host name; the gateway\'s own listeners stay refused even then', async () => {
  const policy = new EgressPolicy({
    allow: ['10.20.0.0/16', 'hooks.intern.contoso.com', '127.0.0.1/32'],
    own: [{ host: '0.0.0.0', port: 8443 }, { host: 'mb.contoso.com', port: 443 }],
    localAddresses: () => ['203.0.113.7', '127.0.0.1'],
    lookup: resolver({ 'hooks.intern.contoso.com': ['10.99.1.1'], 'other.intern.contoso.com': ['10.99.1.2'] }),
  });
  await policy.check('https://10.20.3.4/hook');
  await policy.check('https://hooks.intern.contoso.com/hook');
  await refusedWith(policy.check('https://10.21.0.1/hook'), 'MB_NOTIFY_EGRESS_REFUSED');
  await refusedWith(policy.check('https://other.intern.contoso.com/hook'), 'MB_NOTIFY_EGRESS_REFUSED');
  const own = await refusedWith(policy.check('https://127.0.0.1:8443/api/v1/subscriptions'), 'MB_NOTIFY_EGRESS_OWN_LISTENER');
  assert.equal(own.params.listener, '0.0.0.0:8443');
  await refusedWith(policy.check('https://203.0.113.7:8443/'), 'MB_NOTIFY_EGRESS_OWN_LISTENER');
  await refusedWith(policy.check('https://mb.contoso.com/api/v1/subscriptions'), 'MB_NOTIFY_EGRESS_OWN_LISTENER');
  await policy.check('https://203.0.113.7:9443/');
});

test('connect time: an allow-listed loopback receiver is reached by name; a name rebound to 127.0.0.1 after the subscription check is refused and nothing arrives', async () => {
  const lookup = resolver({ 'hooks.example.test': ['127.0.0.1'], 'rebind.example.net': [['93.184.216.34'], ['127.0.0.1']] });
  const allowed = new EgressPolicy({ allow: ['127.0.0.1/32'], lookup });
  const sink = createWebhookSink({ config: webhookSinkSchema.parse({ requireHttps: false }), egress: allowed });
  const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
  const { mail } = await import('../notify/helpers.ts');
  const ok = await sink.deliver(mail('anna@contoso.com', 'm1'), subscription('webhook', ['anna@contoso.com'], { url: `http://hooks.example.test:${port}/allowed`, secret }));
  assert.equal(ok.kind, 'ok');
  assert.deepEqual(hits, ['/allowed']);

  const strict = new EgressPolicy({ lookup });
  const url = `http://rebind.example.net:${port}/rebound`;
  await strict.check(url); // public when subscribing
  const refusedSink = createWebhookSink({ config: webhookSinkSchema.parse({ requireHttps: false }), egress: strict });
  const r = await refusedSink.deliver(mail('anna@contoso.com', 'm2'), subscription('webhook', ['anna@contoso.com'], { url, secret }));
  assert.equal(r.kind, 'retry');
  assert.equal(r.kind === 'retry' && r.error.code, 'MB_NOTIFY_EGRESS_REFUSED');
  assert.equal(r.kind === 'retry' && r.error.params.address, '127.0.0.1');
  // A literal internal address in a stored subscription (made before the policy) is refused before connecting.
  const literal = await refusedSink.deliver(mail('anna@contoso.com', 'm3'), subscription('webhook', ['anna@contoso.com'], { url: `http://127.0.0.1:${port}/literal`, secret }));
  assert.equal(literal.kind === 'retry' && literal.error.code, 'MB_NOTIFY_EGRESS_REFUSED');
  assert.deepEqual(hits, ['/allowed'], 'nothing reached the loopback receiver');
  await allowed.close();
  await strict.close();
});

test('a redirect is an answer, not a new target: a 307 to an internal address is not followed', async () => {
  const redirector = createServer((_req, res) => res.writeHead(307, { location: `http://127.0.0.1:${port}/redirected` }).end());
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
  try {
    const sink = createWebhookSink({ config: webhookSinkSchema.parse({ requireHttps: false }), egress: new EgressPolicy({ allow: ['127.0.0.1/32'] }) });
    const { mail } = await import('../notify/helpers.ts');
    const r = await sink.deliver(mail('anna@contoso.com', 'm4'), subscription('webhook', ['anna@contoso.com'], { url: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/`, secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}` }));
    assert.equal(r.kind === 'retry' && r.error.code, 'MB_NOTIFY_REJECTED');
    assert.ok(!hits.includes('/redirected'));
    await sink.close?.();
  } finally {
    redirector.close();
  }
});

test('the subscriptions API refuses internal targets with 400 and the MB code, in the caller\'s language, and stores nothing', async () => {
  const t = await tempStore();
  const sink = createWebhookSink({ config: webhookSinkSchema.parse({}) });
  const http = Fastify();
  await registerAdminApi(http, {
    config: configSchema.parse({}),
    store: t.store,
    subscriptions: { repo: t.store.notify, sinks: new Map([['webhook', sink]]), egress: new EgressPolicy() },
    keys: [{ name: 'k', key: 'k'.repeat(24), scopes: ['subscriptions'] }],
  });
  try {
    const post = (url: string, lang = 'en') =>
      http.inject({ method: 'POST', url: '/api/v1/subscriptions', headers: { authorization: `Bearer ${'k'.repeat(24)}`, 'accept-language': lang }, payload: { mailboxes: ['anna@contoso.com'], sink: { kind: 'webhook', url, secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}` } } });
    for (const [url, code] of [
      ['https://169.254.169.254/', 'MB_NOTIFY_EGRESS_REFUSED'],
      ['https://0x7f000001/', 'MB_NOTIFY_EGRESS_REFUSED'],
      ['https://[::ffff:127.0.0.1]/', 'MB_NOTIFY_EGRESS_REFUSED'],
      ['https://localhost/', 'MB_NOTIFY_EGRESS_REFUSED'],
      ['https://u:p@hooks.example.net/', 'MB_NOTIFY_EGRESS_CREDENTIALS'],
    ] as const) {
      const res = await post(url, 'de');
      assert.equal(res.statusCode, 400, url);
      const body = res.json<{ error: { code: string; title: string } }>();
      assert.equal(body.error.code, code, url);
      assert.match(body.error.title, /Benachrichtigungs|Zugangsdaten/);
    }
    assert.equal((await t.store.notify.listSubscriptions({})).length, 0);
  } finally {
    await http.close();
    await t.cleanup();
  }
});
