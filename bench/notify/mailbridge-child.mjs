/**
 * mailbridge's gateway in its own process for the notify benchmark, so that its memory is its own:
 * the real `startGateway` with the notify dispatcher, a webhook sink and the watch service.
 *
 * Memory per watched mailbox: the gateway is started once without watch groups (store, identity,
 * dispatcher, sinks, HTTP — everything but the watchers) and measured, then stopped and started again
 * with the groups and measured once every mailbox is watching; the difference over the mailbox
 * count is what watching costs. Both measurements after ten seconds of settling with full GCs and a
 * last-resort collection (see measure()).
 *
 * Plain JavaScript that loads mailbridge from `modules` (the bundle the packages ship, with these
 * modules as entries, see bench/support/build.ts), so the process holds what an installed
 * mailbridge holds; without `modules` it loads the checkout's TypeScript (and Node's type stripper
 * with it).
 *
 * argv[2]: JSON { configFile, withoutWatchFile, mailboxes, deadlineSeconds, modules? }. Prints `READY <json>` once every
 * mailbox is watching (or `FAILED <json>` after the deadline), stops on SIGTERM.
 */
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const o = JSON.parse(process.argv[2] ?? '{}');
// o.modules: each module's file in the bundle the benchmark built (bench/support/build.ts); else the sources.
const load = (path) => import(pathToFileURL(o.modules?.[path] ?? join(import.meta.dirname, '..', '..', 'src', `${path}.ts`)).href);
const [{ loadConfig }, { createLogger }, { startGateway }] = await Promise.all([load('app/config'), load('log/index'), load('server/index')]);
const gc = globalThis.gc ?? (() => undefined);
const measure = async () => {
  for (let i = 0; i < (o.settleSeconds ?? 10); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    gc();
  }
  // What V8 keeps after ordinary collections: young-generation pages it pooled during the start-up
  // burst (one HTTPS exchange or more per mailbox) stay resident but are no live data; V8 gives them
  // back under memory pressure. A last-resort collection (what V8 runs then) shows the memory the
  // process needs; both figures are reported.
  const retainedRss = process.memoryUsage().rss;
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  const m = process.memoryUsage();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { retainedRss, rss: m.rss, rssAnon: kb('RssAnon'), rssFile: kb('RssFile') + kb('RssShmem'), heap: m.heapUsed, heapTotal: m.heapTotal, external: m.external + m.arrayBuffers, fds: readdirSync('/proc/self/fd').length };
};
const logFile = createWriteStream(join(dirname(o.configFile), 'mailbridge-bench.log'));
const log = createLogger({ level: 'warn', destination: logFile });

const plain = await loadConfig(o.withoutWatchFile, process.env);
let gw = await startGateway(plain.config, log, { keyFile: plain.keyFile });
const before = await measure();
await gw.close();

const full = await loadConfig(o.configFile, process.env);
const started = Date.now();
gw = await startGateway(full.config, log, { keyFile: full.keyFile });
const deadline = started + o.deadlineSeconds * 1000;
let watching;
for (;;) {
  const s = gw.watch?.status();
  watching = s?.groups.reduce((n, g) => n + (g.states.watching ?? 0), 0) ?? 0;
  if (watching >= o.mailboxes || Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 250));
}
const setupSeconds = (Date.now() - started) / 1000;
const after = await measure();
const report = { watching, setupSeconds, before, after, problems: gw.watch?.status().problems.slice(-3) ?? [] };
process.stdout.write(`${watching >= o.mailboxes ? 'READY' : 'FAILED'} ${JSON.stringify(report)}\n`);
// The event-loop delay from here on (mail flowing), in ms: how late the watchers and the dispatcher ran.
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const peak = setInterval(() => process.stdout.write(`MEM ${JSON.stringify({ ...process.memoryUsage(), delay: { p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 } })}\n`), 5000);
process.on('SIGTERM', () => {
  clearInterval(peak);
  void gw.close('SIGTERM').finally(() => {
    logFile.end();
    process.exit(0);
  });
});
