import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

const NODE = process.execPath;
const MAIN = new URL('../../../src/admin/cli/main.ts', import.meta.url).pathname;

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(NODE, [MAIN, ...args], { env: { ...process.env, LANG: 'C', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return { child, done: once(child, 'exit').then(([code]) => ({ code: code as number, stdout, stderr })), out: () => stdout };
}

test('--help lists the commands in English, and in German from LANG or --lang', async () => {
  const en = await run(['--help']).done;
  assert.equal(en.code, 0);
  assert.match(en.stdout, /Usage: mailbridge/);
  assert.match(en.stdout, /serve/);
  const de = await run(['--help'], { LANG: 'de_DE.UTF-8' }).done;
  assert.match(de.stdout, /Aufruf: mailbridge/);
  const de2 = await run(['--lang', 'de', 'serve', '--help']).done;
  assert.match(de2.stdout, /Startet das dauerhaft laufende Gateway/);
});

test('--help shows every command once, under the heading of its task, in English and German', async () => {
  const { commandGroups, commands } = await import('../../../src/admin/cli/commands/index.ts');
  for (const [lang, headings] of [
    ['en', ['Run', 'Set up and check', 'Send', 'Fetch', 'Notify', 'Sandbox']],
    ['de', ['Betrieb', 'Einrichten und prüfen', 'Senden', 'Abrufen', 'Benachrichtigen', 'Sandbox']],
  ] as const) {
    const r = await run(['--lang', lang, '--help']).done;
    assert.equal(r.code, 0);
    // The overview as heading → command names, read from the printed text.
    const shown = new Map<string, string[]>();
    let current: string[] | undefined;
    for (const line of r.stdout.split('\n')) {
      const heading = /^(\S.*):$/.exec(line)?.[1];
      if (heading) shown.set(heading, (current = []));
      else if (current && /^ {2}\S/.test(line)) current.push(line.trim().split(/\s+/)[0]!);
      else if (line === '') current = undefined;
    }
    assert.deepEqual([...shown.keys()], headings);
    assert.deepEqual(
      [...shown.values()],
      commandGroups.map((g) => Object.keys(g.commands)),
    );
    assert.deepEqual([...shown.values()].flat().sort(), Object.keys(commands).sort());
  }
  assert.equal(Object.keys(commands).length, commandGroups.reduce((n, g) => n + Object.keys(g.commands).length, 0), 'a command in two groups');
});

test('an unknown command exits 2 with its MB code, cause and fix', async () => {
  const r = await run(['frobnicate']).done;
  assert.equal(r.code, 2);
  assert.match(r.stderr, /MB_CLI_UNKNOWN_COMMAND/);
  assert.match(r.stderr, /Fix: Run `mailbridge --help`/);
});

test('serve starts on the embedded default with no config file, answers /health, and stops on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-serve-'));
  try {
    const p = run(['--config', join(dir, 'none.yaml'), 'serve', '--port', '0'], { MAILBRIDGE__STORE__PATH: join(dir, 'mb.db') });
    // Wait for the line that names the health URL, without taking the stream away from the collector.
    const url = await new Promise<string>((resolve, reject) => {
      p.child.stdout.on('data', () => {
        const m = /(http:\/\/\S+\/health)/.exec(p.out());
        if (m) resolve(m[1]!);
      });
      p.child.once('exit', () => reject(new Error('serve exited before it printed its URL')));
    });
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, 'ok');
    p.child.kill('SIGTERM');
    const r = await p.done;
    assert.equal(r.code, 0);
    assert.match(r.stdout, /SIGTERM received/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
