/**
 * Pieces the several-node tests share: a webhook subscription written straight into the shared
 * PostgreSQL store (sealed with the sandbox's key, as the subscriptions API would), and a gateway
 * child process (test/cluster/fixtures/gateway-child.ts) that reports how many mailboxes it watches.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { openSecretBox } from '../../src/config/secrets.ts';
import { sealedNotifyRepository } from '../../src/notify/sealed.ts';
import { openStore } from '../../src/store/index.ts';

const NODE = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'node');

/** A webhook subscription for `mailboxes` to `hook`, signed with a secret made from `secretByte`. */
export async function subscribeWebhook(o: { url: string; sandboxDir: string; id: string; mailboxes: string[]; hook: string; secretByte: number; events?: string[] }): Promise<void> {
  const store = await openStore({ driver: 'postgres', url: o.url });
  try {
    const box = await openSecretBox({ keyFile: join(o.sandboxDir, 'mailbridge.key'), env: {} });
    await sealedNotifyRepository(store.notify, box).createSubscription({
      id: o.id,
      kind: 'webhook',
      mailboxes: o.mailboxes,
      events: o.events ?? [],
      params: { url: o.hook, secret: `whsec_${Buffer.alloc(32, o.secretByte).toString('base64')}` },
      privacy: 'full',
      state: 'active',
      createdAt: Date.now(),
      updatedAt: Date.now(),
    });
  } finally {
    await store.close();
  }
}

/** A gateway in a child process; `onWatching` gets each count of watched mailboxes it reports. */
export function spawnGateway(o: { configFile: string; leaseMs: number; caFile: string; onWatching: (n: number) => void; children?: Set<ChildProcess> }): ChildProcess {
  const child = spawn(NODE, [join(import.meta.dirname, '..', 'cluster', 'fixtures', 'gateway-child.ts'), JSON.stringify({ configFile: o.configFile, shardSize: 1, leaseMs: o.leaseMs })], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: o.caFile },
  });
  o.children?.add(child);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('WATCHING ')) o.onWatching(Number(line.slice(9)));
  });
  return child;
}
