/**
 * Benchmark (not a test): pickup latency of the connector's Graph source, polling beside change
 * notifications. A running connector reads a mailbox through the sandbox Graph (over the bench's
 * Dovecot); the bench delivers one message at a time into it over LMTP and measures from the moment
 * Dovecot acknowledged the arrival to the moment mailbridge has the message in its destination (a
 * maildir, fsynced) and recorded in its store. Prints p50, p95 and the maximum for each mode:
 *
 * - poll: no notifications, pollSeconds 5 (the smallest allowed); arrivals fall at random points
 *   of the poll period (a random pause of 0–5 s between messages), as mail does.
 * - notify: source.notifications.publicUrl set (the connector's own HTTPS listener), pollSeconds
 *   3600, so only the change notification can wake it.
 *
 * What is in the notify figure: the sandbox's mail feed noticing the message (Dovecot IDLE), the
 * notification POST to the connector's listener, the delta round, GET /$value, the maildir write
 * and mailbridge's two fsynced store writes. The sandbox notifies as soon as Dovecot reports the
 * message; whatever delay Exchange Online puts between an arrival and its notification is not in
 * the figure: it is what mailbridge adds on top of Microsoft's side.
 *
 * Run: node_modules/.bin/node bench/connector/graph-latency.ts [--samples 40] [--mode poll|notify|both]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet } from 'jose';
import { connectorPlugins } from '../../src/app/connectors.ts';
import { connectorSchema } from '../../src/connector/config.ts';
import { runConnector } from '../../src/connector/index.ts';
import type { ConnectorEvent } from '../../src/connector/types.ts';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { startGraphSandbox } from '../../src/sandbox/graph/index.ts';
import { openStore } from '../../src/store/index.ts';
import { benchMessage, percentile, startBenchRig } from './rig.ts';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '40' }, mode: { type: 'string', default: 'both' } } });
const SAMPLES = Number(values.samples);
const MODES = values.mode === 'both' ? (['poll', 'notify'] as const) : ([values.mode] as Array<'poll' | 'notify'>);
const POLL_SECONDS = 5;

const work = mkdtempSync(join(tmpdir(), 'mb-bench-graph-'));
const rig = await startBenchRig([]);
const ca = createSandboxCa();
const tenantId = randomUUID();
const app = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
const mailboxes = { poll: 'graph-poll@bench.test', notify: 'graph-notify@bench.test' };
const signer = await generateKeyPair('RS256', { extractable: true });
const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(signer.publicKey)), kid: 'bench', alg: 'RS256', use: 'sig' }] };
const directory = new SandboxDirectory({
  tenants: [
    {
      id: tenantId,
      domains: ['bench.test'],
      apps: [{ ...app, displayName: 'mailbridge', appRoles: { exchange: [], graph: ['Mail.ReadWrite'] } }],
      exchange: { servicePrincipals: [], mailboxes: Object.values(mailboxes).map((address) => ({ address })) },
    },
  ],
});
const graph = await startGraphSandbox({ directory, jwks, tls: ca.issueServer(), dovecot: rig.dovecot, trust: [ca.certPem] });
const listenerTls = ca.issueServer(['127.0.0.1']);
const files: Record<string, string> = { '/ca.pem': ca.certPem, '/cert.pem': listenerTls.certPem, '/key.pem': listenerTls.keyPem };

async function token(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ aud: 'https://graph.microsoft.com', iss: `https://sts.windows.net/${tenantId}/`, tid: tenantId, appid: app.appId, oid: app.servicePrincipalId, idtyp: 'app', roles: ['Mail.ReadWrite'], ver: '1.0' })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'bench' })
    .setIssuedAt(now - 300)
    .setExpirationTime(now + 3600)
    .sign(signer.privateKey);
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  await once(s, 'close');
  return port;
}

async function measure(mode: 'poll' | 'notify'): Promise<number[]> {
  const mailbox = mailboxes[mode];
  const store = await openStore({ driver: 'sqlite', path: join(work, `${mode}.db`) });
  const port = await freePort();
  const config = connectorSchema.parse({
    connection: 'bench',
    source: {
      kind: 'graph',
      baseUrl: `${graph.url}/v1.0`,
      caFile: '/ca.pem',
      ...(mode === 'notify' ? { notifications: { publicUrl: `https://127.0.0.1:${port}`, listen: { host: '127.0.0.1', port, certFile: '/cert.pem', keyFile: '/key.pem' } } } : {}),
    },
    mailboxes: [mailbox],
    destination: { kind: 'maildir', path: join(work, `maildir-${mode}`) },
    after: { action: 'none' },
    pollSeconds: mode === 'notify' ? 3600 : POLL_SECONDS,
  });
  let next: ((t: number) => void) | undefined;
  let waiting = 0;
  const onEvent = (e: ConnectorEvent) => {
    if (e.type === 'waiting') waiting++;
    if (e.type === 'delivered') next?.(performance.now());
  };
  const controller = new AbortController();
  const running = runConnector(
    { name: `graph-${mode}`, config, plugins: connectorPlugins, repo: store.checkpoints, kv: store.kv, tokens: token, onEvent, readFile: (p) => files[p]! },
    { signal: controller.signal },
  );
  try {
    // Notify: the first round, then the round for the new subscription; poll: the first round.
    while (waiting < (mode === 'notify' ? 2 : 1)) await new Promise((r) => setTimeout(r, 20));
    const latencies: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const delivered = new Promise<number>((resolve) => (next = resolve));
      await rig.dovecot.deliver({ from: 'scanner@bench.test', to: [mailbox] }, benchMessage(i, 4096, `graph-${mode}`));
      const arrived = performance.now();
      const done = await Promise.race([delivered, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`${mode}: message ${i} not picked up within 30 s`)), 30_000))]);
      next = undefined;
      latencies.push(done - arrived);
      // Arrivals at random points: of the poll period when polling, a short pause otherwise.
      await new Promise((r) => setTimeout(r, mode === 'poll' ? Math.random() * POLL_SECONDS * 1000 : 50 + Math.random() * 200));
    }
    return latencies.sort((a, b) => a - b);
  } finally {
    controller.abort();
    await running.catch(() => undefined);
    await store.close();
  }
}

try {
  const f = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
  console.log(`Graph source pickup, ${SAMPLES} messages one at a time, arrival (Dovecot LMTP 250) → delivered (maildir + checkpoint):`);
  for (const mode of MODES) {
    const l = await measure(mode);
    const label = mode === 'poll' ? `polling every ${POLL_SECONDS} s     ` : 'change notifications';
    console.log(`${label}  p50 ${f(percentile(l, 50))}  p95 ${f(percentile(l, 95))}  max ${f(l.at(-1)!)}`);
  }
} finally {
  await graph.close();
  await rig.close();
  rmSync(work, { recursive: true, force: true });
}
