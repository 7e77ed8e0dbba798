/**
 * The EWS watcher without a configured URL: autodiscover against the sandbox emulator (SOAP
 * GetUserSettings, POX, the HTTP redirect and the SRV record), grouping by GroupingInformation
 * with one affinity cookie per group, and `servers` limiting the watch to listed mailbox servers.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { autodiscoverAll, type AutodiscoverResult } from '../../../../src/m365/ews/autodiscover.ts';
import { createEwsWatcher, ewsWatchSchema, type EwsWatcher, type EwsWatchHooks } from '../../../../src/notify/watchers/ews/index.ts';
import { MbError } from '../../../../src/errors/index.ts';
import { MAILBOXES, startRig, type Rig } from './rig.ts';
import { waitFor } from '../../../support/wait.ts';

let rig: Rig;
let agent: Agent;
const watchers: EwsWatcher[] = [];

before(async () => {
  rig = await startRig();
  agent = new Agent({ connect: { ca: rig.ca.certPem } });
});
after(async () => {
  for (const w of watchers) await w.close();
  await agent?.close();
  await rig?.close();
});

function discover(mailboxes: string[], o: { candidates?: EwsWatchHooks['autodiscoverCandidates']; resolveSrv?: EwsWatchHooks['resolveSrv']; url?: string }) {
  return autodiscoverAll(mailboxes, {
    agent,
    authorization: rig.authorization,
    kv: rig.store.store.kv,
    namespace: 'watch-ews-test',
    now: Date.now,
    version: 'Exchange2013',
    prefer: 'external',
    cacheHours: 0,
    timeoutMs: 10_000,
    signal: new AbortController().signal,
    ...o,
  });
}

test('SOAP autodiscover: the first candidate that answers serves the domain; EWS URL, grouping and server per mailbox', async () => {
  const origin = rig.ews.origin;
  const tried: string[] = [];
  const r = await discover([...MAILBOXES, 'nobody@contoso.test'], {
    candidates: (domain) => {
      tried.push(domain);
      return [`${origin}/no-such/autodiscover.svc`, `${origin}/autodiscover/autodiscover.svc`];
    },
  });
  assert.deepEqual(tried, ['contoso.test']);
  for (const m of MAILBOXES) {
    const a = r.get(m) as AutodiscoverResult;
    assert.equal(a.ewsUrl, rig.ews.url);
    assert.equal(a.server, rig.ews.backends.of(m));
    assert.match(a.grouping ?? '', /^SITE-/);
    assert.equal(a.source, `${origin}/autodiscover/autodiscover.svc`);
  }
  const nobody = r.get('nobody@contoso.test');
  assert.ok(nobody instanceof MbError);
  assert.equal(nobody.code, 'MB_EWS_AUTODISCOVER_FAILED');
  assert.match(nobody.message, /InvalidUser/);
});

test('POX, the unauthenticated HTTP redirect and the SRV record each lead to the EWS URL', async () => {
  const origin = rig.ews.origin;
  const pox = await discover(['anna@contoso.test'], { candidates: () => [`${origin}/autodiscover/autodiscover.xml`] });
  assert.equal((pox.get('anna@contoso.test') as AutodiscoverResult).ewsUrl, rig.ews.url);
  assert.equal((pox.get('anna@contoso.test') as AutodiscoverResult).server !== undefined, true);

  // http://autodiscover.{domain}/autodiscover/autodiscover.xml answers 302 to the https endpoint.
  const redirector: Server = createServer((req, res) => {
    res.writeHead(302, { location: `${origin}/autodiscover/autodiscover.xml` }).end();
  });
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
  try {
    const port = (redirector.address() as AddressInfo).port;
    const via = await discover(['ben@contoso.test'], { candidates: () => [{ kind: 'redirect', url: `http://127.0.0.1:${port}/autodiscover/autodiscover.xml` }] });
    assert.equal((via.get('ben@contoso.test') as AutodiscoverResult).ewsUrl, rig.ews.url);
    assert.equal((via.get('ben@contoso.test') as AutodiscoverResult).source, `${origin}/autodiscover/autodiscover.xml`);
  } finally {
    await new Promise<void>((r) => redirector.close(() => r()));
  }

  const srvAsked: string[] = [];
  const { port } = new URL(origin);
  const srv = await discover(['cara@contoso.test'], {
    candidates: (d) => [{ kind: 'srv', url: `_autodiscover._tcp.${d}` }],
    resolveSrv: async (name) => {
      srvAsked.push(name);
      return [{ name: '127.0.0.1', port: Number(port), priority: 0, weight: 0 }];
    },
  });
  assert.deepEqual(srvAsked, ['_autodiscover._tcp.contoso.test']);
  assert.equal((srv.get('cara@contoso.test') as AutodiscoverResult).ewsUrl, rig.ews.url);
});

test('the watcher autodiscovers, groups by GroupingInformation (one affinity cookie each), and `servers` limits what it watches', async () => {
  const candidates = () => [`${rig.ews.origin}/autodiscover/autodiscover.svc`];
  const cookiesBefore = rig.ews.stats.affinityCookies;
  const all = createEwsWatcher({
    listener: 'ews-ad',
    mailboxes: MAILBOXES.map((address) => ({ address, folders: ['inbox'] })),
    authorization: rig.authorization,
    options: ewsWatchSchema.parse({}),
    ctx: rig.ctx,
    ca: rig.ca.certPem,
    hooks: { autodiscoverCandidates: candidates },
  });
  watchers.push(all);
  await all.start();
  const sites = new Set(MAILBOXES.map((m) => rig.ews.backends.of(m)));
  assert.equal(all.groups.length, sites.size);
  for (const g of all.groups) {
    const servers = new Set(g.members.map((m) => rig.ews.backends.of(m.address)));
    assert.equal(servers.size, 1, 'a group lives on one backend');
    assert.equal(g.anchor.address, [...g.members.map((m) => m.address)].sort()[0]);
  }
  assert.equal(rig.ews.stats.affinityCookies - cookiesBefore, all.groups.length);
  assert.ok(all.status().every((s) => s.state === 'watching'));
  // Cached: a second watcher asks autodiscover nothing.
  assert.ok(await rig.store.store.kv.get('watch-ews', `ad:${MAILBOXES[0]}`));

  const target = MAILBOXES[1]!;
  await rig.deliver(target, 'Found by autodiscover');
  await waitFor(() => rig.at(target, 'message.new').some((e) => e.type === 'message.new' && e.subject === 'Found by autodiscover'), 10_000, 'delivered');
  await all.close();

  const server = rig.ews.backends.of(MAILBOXES[0]!);
  const limited = createEwsWatcher({
    listener: 'ews-ad-2',
    mailboxes: MAILBOXES.map((address) => ({ address, folders: ['inbox'] })),
    authorization: rig.authorization,
    options: ewsWatchSchema.parse({ url: rig.ews.url, servers: [server.split('.')[0]!.toLowerCase()] }),
    ctx: rig.ctx,
    ca: rig.ca.certPem,
    hooks: { autodiscoverCandidates: candidates },
  });
  watchers.push(limited);
  const problemsBefore = rig.problems.length;
  await limited.start();
  const expected = MAILBOXES.filter((m) => rig.ews.backends.of(m) === server);
  assert.ok(expected.length > 0 && expected.length < MAILBOXES.length, 'the rig spreads mailboxes over both backends');
  assert.deepEqual(limited.status().filter((s) => s.state !== 'failed').map((s) => s.mailbox).sort(), expected.sort());
  // The others are listed in the group but nobody watches them: each is a failed mailbox with its code.
  const left = MAILBOXES.filter((m) => !expected.includes(m)).sort();
  const failed = limited.status().filter((s) => s.state === 'failed');
  assert.deepEqual(failed.map((s) => s.mailbox).sort(), left);
  assert.ok(failed.every((s) => s.error?.code === 'MB_EWS_MAILBOX_NOT_ON_SERVERS'));
  const reported = rig.problems.slice(problemsBefore).filter((p) => p.error.code === 'MB_EWS_MAILBOX_NOT_ON_SERVERS');
  assert.deepEqual(reported.map((p) => p.mailbox).sort(), left);
  await limited.close();
});
