/**
 * The gauges read from their owners at scrape time: each scrape shows the owner's rows of now (a
 * series that is gone disappears), a gauge without an owner in this process shows nothing, and a
 * store that does not answer keeps the node counts last read but shows no claimed messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../src/metrics/index.ts';

/** The exposition lines of one metric, without HELP and TYPE. */
async function series(m: Metrics, name: string): Promise<string[]> {
  const { body } = await m.render();
  return body.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).sort();
}

test('a scrape shows the rows the owner has now; a series that is gone disappears', async () => {
  const m = new Metrics({ processMetrics: false });
  let states: Record<string, number> = { watching: 3, failed: 1 };
  m.sources.watchStates = () => [{ group: 'legacy', kind: 'graph', states }];
  m.sources.queueCounts = async () => ({ deferred: 2 });
  m.sources.node = () => ({ id: 'n1', name: 'mb1', version: '1.0.0', role: 'serve', owns: { 'watch:legacy': 4 } });
  m.sources.smtpOpen = async () => [{ listener: '127.0.0.1:2525', open: 5 }];
  m.sources.credentials = async () => [{ connection: 'm365', kind: 'secret', expires: new Date('2027-01-01T00:00:00.500Z') }];
  assert.deepEqual(await series(m, 'mailbridge_watch_mailboxes'), [
    'mailbridge_watch_mailboxes{group="legacy",kind="graph",state="failed"} 1',
    'mailbridge_watch_mailboxes{group="legacy",kind="graph",state="watching"} 3',
  ]);
  assert.deepEqual(await series(m, 'mailbridge_relay_queue_messages'), ['mailbridge_relay_queue_messages{state="deferred"} 2']);
  assert.deepEqual(await series(m, 'mailbridge_node_info'), ['mailbridge_node_info{id="n1",name="mb1",version="1.0.0",role="serve"} 1']);
  assert.deepEqual(await series(m, 'mailbridge_node_owned'), ['mailbridge_node_owned{pool="watch:legacy"} 4']);
  assert.deepEqual(await series(m, 'mailbridge_smtp_sessions_open'), ['mailbridge_smtp_sessions_open{listener="127.0.0.1:2525"} 5']);
  assert.deepEqual(await series(m, 'mailbridge_credential_expiry_timestamp_seconds'), [
    `mailbridge_credential_expiry_timestamp_seconds{connection="m365",kind="secret"} ${Math.floor(Date.parse('2027-01-01T00:00:00Z') / 1000)}`,
  ]);
  states = { watching: 4 };
  assert.deepEqual(await series(m, 'mailbridge_watch_mailboxes'), ['mailbridge_watch_mailboxes{group="legacy",kind="graph",state="watching"} 4']);
});

test('a gauge whose owner is not in this process shows no series', async () => {
  const m = new Metrics({ processMetrics: false });
  for (const name of ['mailbridge_watch_mailboxes', 'mailbridge_relay_queue_messages', 'mailbridge_node_info', 'mailbridge_node_owned', 'mailbridge_cluster_nodes', 'mailbridge_cluster_relay_claimed']) {
    assert.deepEqual(await series(m, name), [], name);
  }
});

test('while the store does not answer, the node counts last read stay and no claimed messages are shown', async () => {
  const m = new Metrics({ processMetrics: false });
  let answer: () => Promise<{ live: number; dead: number; relayClaimed?: Array<{ id: string; name: string; claimed: number }> }> = async () => ({
    live: 2,
    dead: 1,
    relayClaimed: [{ id: 'n1', name: 'mb1', claimed: 3 }],
  });
  m.sources.clusterNodes = () => answer();
  assert.deepEqual(await series(m, 'mailbridge_cluster_nodes'), ['mailbridge_cluster_nodes{state="dead"} 1', 'mailbridge_cluster_nodes{state="live"} 2']);
  assert.deepEqual(await series(m, 'mailbridge_cluster_relay_claimed'), ['mailbridge_cluster_relay_claimed{node="n1",name="mb1"} 3']);
  answer = async () => {
    throw new Error('connection refused');
  };
  assert.deepEqual(await series(m, 'mailbridge_cluster_nodes'), ['mailbridge_cluster_nodes{state="dead"} 1', 'mailbridge_cluster_nodes{state="live"} 2']);
  assert.deepEqual(await series(m, 'mailbridge_cluster_relay_claimed'), []);
});
