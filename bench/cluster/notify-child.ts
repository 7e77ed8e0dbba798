/**
 * One mailbridge node for bench/cluster/notify.ts: the real `startGateway` from a config file, in
 * its own process (as each node of a cluster runs on its own host). Prints `READY` once started and
 * `WATCHING <n>` whenever the number of mailboxes it watches changes; stops on SIGTERM.
 *
 * argv[2]: JSON { configFile, shardSize, leaseMs }.
 */
import { createWriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadConfig } from '../../src/app/config.ts';
import { createLogger } from '../../src/log/index.ts';
import { startGateway } from '../../src/server/index.ts';

const o = JSON.parse(process.argv[2] ?? '{}') as { configFile: string; shardSize: number; leaseMs: number };
const loaded = await loadConfig(o.configFile, process.env);
const log = createLogger({ level: 'warn', destination: createWriteStream(join(dirname(o.configFile), `${loaded.config.node.name ?? 'node'}.log`)) });
const gw = await startGateway(loaded.config, log, { keyFile: loaded.keyFile, cluster: { shardSize: o.shardSize, leaseMs: o.leaseMs } });
// Started (and taking part in the ownership rounds): a node that holds nothing yet is still counted.
process.stdout.write('READY\n');
let last = -1;
const timer = setInterval(() => {
  const n = gw.watch?.status().groups.reduce((k, g) => k + (g.states.watching ?? 0), 0) ?? 0;
  if (n !== last) process.stdout.write(`WATCHING ${n}\n`);
  last = n;
}, 200);
process.once('SIGTERM', () => {
  clearInterval(timer);
  void gw.close('SIGTERM').then(() => process.exit(0));
});
