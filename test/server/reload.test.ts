import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/app/config.ts';
import { createLogger } from '../../src/log/index.ts';
import { reloadConfig } from '../../src/server/reload.ts';

const dir = mkdtempSync(join(tmpdir(), 'mb-reload-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function setup(yaml: string) {
  const path = join(dir, 'mailbridge.yaml');
  writeFileSync(path, yaml);
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) } });
  return { path, lines, log, o: { configPath: path, env: {}, lang: 'en' as const, log } };
}

test('SIGHUP reload applies a new log level at once, also to child loggers made before', async () => {
  const { path, lines, log, o } = setup('log: { level: info }\nserver: { port: 0 }\n');
  const running = (await loadConfig(path, {})).config;
  const child = log.child({ component: 'relay' });
  child.debug('hidden');
  writeFileSync(path, 'log: { level: debug }\nserver: { port: 0 }\n');
  const now = await reloadConfig(running, o);
  assert.equal(now.log.level, 'debug');
  child.debug('shown');
  assert.deepEqual(
    lines.filter((l) => l.msg === 'hidden' || l.msg === 'shown').map((l) => l.msg),
    ['shown'],
  );
  assert.ok(lines.some((l) => l.msg === 'reload: log level changed' && l.from === 'info' && l.to === 'debug'));
  assert.ok(!lines.some((l) => l.level === 40), 'nothing else changed, so no restart is asked for');
});

test('SIGHUP reload names the sections that need a restart and keeps running on them as they are', async () => {
  const { path, lines, o } = setup('server: { port: 0 }\n');
  const running = (await loadConfig(path, {})).config;
  writeFileSync(path, 'server: { port: 9999 }\nstore: { driver: sqlite, path: other.db }\n');
  const now = await reloadConfig(running, o);
  assert.equal(now.server.port, 0);
  const warn = lines.find((l) => l.level === 40);
  assert.deepEqual([...(warn?.sections as string[])].sort(), ['server', 'store']);
  // serve --port given at start counts as part of the running configuration, not as a change.
  writeFileSync(path, 'server: { port: 0 }\n');
  const lines2 = setup('server: { port: 1234 }\n');
  const started = (await loadConfig(lines2.path, {})).config;
  started.server.port = 1234;
  await reloadConfig(started, { ...lines2.o, adjust: (c) => (c.server.port = 1234) });
  assert.ok(!lines2.lines.some((l) => l.level === 40), JSON.stringify(lines2.lines));
});

test('SIGHUP reload of a broken file logs its MB code and keeps the running configuration', async () => {
  const { path, lines, o } = setup('log: { level: info }\n');
  const running = (await loadConfig(path, {})).config;
  writeFileSync(path, 'log: { level: loud }\n');
  const now = await reloadConfig(running, o);
  assert.equal(now, running);
  const err = lines.find((l) => l.level === 50);
  assert.equal(err?.code, 'MB_CONFIG_INVALID');
  assert.match(String(err?.msg), /running configuration stays in effect/);
});
