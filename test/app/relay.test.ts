/**
 * The composition root chooses where relay bodies live by the store driver: the store and the spool
 * folder with in-memory limits on SQLite (one node), bodies, claims with leases and limits in the
 * database on PostgreSQL (several nodes).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { relayStorage } from '../../src/app/relay.ts';
import { relaySchema } from '../../src/relay/config.ts';
import { StoreSpool } from '../../src/relay/queue/store-spool.ts';
import { InlineSpool } from '../../src/relay/queue/inline-spool.ts';
import { join } from 'node:path';
import { storeDrivers } from '../support/stores.ts';

const drivers = storeDrivers();
after(() => drivers.close());

test('SQLite: small bodies in the store and large ones in the spool folder, no cluster; PostgreSQL: bodies in the store and claims with the configured lease', async () => {
  const config = relaySchema.parse({ queue: { leaseSeconds: 7 } });
  const [sqlite, postgres] = drivers.list;
  const local = relayStorage(await sqlite!.open(), config);
  assert.ok(local.spool instanceof InlineSpool && local.spool.dir === join(config.dataDir, 'spool'));
  assert.equal(local.cluster, undefined);
  const pg = relayStorage(await postgres!.open(), config, { node: 'n1:42' });
  assert.ok(pg.spool instanceof StoreSpool);
  assert.deepEqual(pg.cluster, { node: 'n1:42', leaseMs: 7_000 });
  const a = relayStorage(await postgres!.reopen(), config).cluster!.node;
  const b = relayStorage(await postgres!.reopen(), config).cluster!.node;
  assert.notEqual(a, b, 'each start claims under a name of its own, so it never renews what an earlier run left');
});
