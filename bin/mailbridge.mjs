#!/usr/bin/env node
// The `mailbridge` command: of a checkout (`npx mailbridge`), of the npm package (on PATH after
// `npm install -g`) and of the Debian package and the container image (which start it with the
// bundled Node 24).
//
// mailbridge needs Node.js 24. On Node 24 or later the CLI runs in this very process, so signals
// and the exit status need no relaying. On an older Node it runs the Node 24 that the `node` npm
// package (an optional dependency) installed next to mailbridge, as a child: SIGTERM, SIGINT and
// SIGHUP sent to this process are passed on, and the child's exit code, or the signal that ended
// it, becomes this process's own. A signal the terminal sends to the whole foreground process
// group (Ctrl-C, hang-up) already reaches the child, so it is not sent a second time (a second
// SIGINT means "stop now" to mailbridge). (process.execve of Node 22.15+ would keep one PID, but
// it is experimental there and prints a warning.)
// Without Node 24 it prints MB_NODE_TOO_OLD (src/errors/entries/launcher.ts has the same text;
// test/packaging/launcher.test.ts keeps the two equal) and exits with 1.
//
// This file must run on the old Node it complains about: plain JavaScript, no TypeScript.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NEEDED = 24;
const root = fileURLToPath(new URL('..', import.meta.url));
// A checkout runs the TypeScript sources; the packages ship them bundled into dist/ (scripts/build.ts;
// Node does not strip types from files under node_modules, where `npm install -g` puts mailbridge).
const sources = join(root, 'src', 'admin', 'cli', 'main.ts');
const entry = existsSync(sources) ? sources : join(root, 'dist', 'main.js');
const args = process.argv.slice(2);
const serve = args.includes('serve') ? serveSettings() : { flags: [], env: {} };

if (Number(process.versions.node.split('.')[0]) >= NEEDED) {
  // V8 reads its heap sizes and glibc its malloc settings when the process starts, so `serve`
  // starts over with them: execve keeps the PID (systemd's main PID, signals and the exit status
  // stay this process's own).
  if ((serve.flags.length > 0 || Object.keys(serve.env).length > 0) && typeof process.execve === 'function') {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...serve.flags, fileURLToPath(import.meta.url), ...args], { ...process.env, ...serve.env });
  }
  const cli = await import(pathToFileURL(entry).href);
  process.exitCode = await cli.main(args);
} else {
  const node = bundledNode();
  if (!node) tooOld();
  else runChild(node);
}

/**
 * What the long-running gateway starts with (package.json "mailbridge"): V8 options (serveFlags)
 * and environment variables (serveEnv) that are not given already — on the command line, in
 * NODE_OPTIONS or in the environment, an admin's own choice wins. Why these: docs/en/operations.md,
 * "Memory".
 */
function serveSettings() {
  let wanted;
  try {
    wanted = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).mailbridge ?? {};
  } catch {
    return { flags: [], env: {} };
  }
  // A flag's name as V8 reads it: `--no-optimize-for-size` is the admin's word on `--optimize-for-size`.
  const name = (f) => f.split('=')[0].replace(/_/g, '-').replace(/^--no-/, '--');
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map(name);
  const flags = (wanted.serveFlags ?? []).filter((f) => !given.includes(name(f)));
  const env = Object.fromEntries(Object.entries(wanted.serveEnv ?? {}).filter(([k]) => process.env[k] === undefined));
  return { flags, env };
}

/** The Node 24 binary of the `node` package, wherever npm put it (nested or hoisted). */
function bundledNode() {
  try {
    const pkg = createRequire(import.meta.url).resolve('node/package.json');
    const bin = join(dirname(pkg), 'bin', 'node');
    return existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

function runChild(node) {
  const child = spawn(node, [...serve.flags, entry, ...args], { stdio: 'inherit', env: { ...process.env, ...serve.env } });
  const relay = {};
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    relay[sig] = () => {
      if (sig !== 'SIGTERM' && inForegroundGroup()) return;
      try {
        child.kill(sig);
      } catch {
        // The child is already gone; its exit event follows.
      }
    };
    process.on(sig, relay[sig]);
  }
  child.on('error', (err) => {
    console.error(`mailbridge: ${node}: ${err.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // End the same way, so the caller (a shell, systemd, a timeout) sees the signal: without a
      // listener the signal's default action applies.
      for (const sig of Object.keys(relay)) process.off(sig, relay[sig]);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
}

/**
 * Whether this process belongs to the foreground process group of its controlling terminal: then
 * the terminal's SIGINT and SIGHUP went to the child as well (fields 5, 7 and 8 of
 * /proc/self/stat: process group, terminal, terminal's foreground group).
 */
function inForegroundGroup() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[4]) !== 0 && f[2] === f[5];
  } catch {
    return false;
  }
}

function tooOld() {
  const env = process.env;
  const pick = env.MAILBRIDGE_LANG || env.LC_ALL || env.LC_MESSAGES || env.LANG || 'en';
  const de = pick.toLowerCase().startsWith('de');
  const p = { version: process.versions.node, node: process.execPath };
  const text = de
    ? [
        'MB_NODE_TOO_OLD: Node.js ist zu alt',
        `  Ursache: mailbridge braucht Node.js 24 oder neuer. Gestartet wurde es mit Node.js ${p.version} (${p.node}), und die mitgelieferte Node.js-24-Laufzeit (npm-Paket „node“) ist nicht installiert.`,
        '  Behebung: Installieren Sie mailbridge mit seiner Laufzeit neu: `npm install -g mailbridge` (ohne --omit=optional, --ignore-scripts oder --allow-scripts), im Quellverzeichnis `npm ci`; oder installieren Sie Node.js 24 (https://nodejs.org) oder das Debian-Paket von mailbridge.',
      ]
    : [
        'MB_NODE_TOO_OLD: Node.js is too old',
        `  Cause: mailbridge needs Node.js 24 or later. It was started by Node.js ${p.version} (${p.node}), and its bundled Node.js 24 runtime (the npm package "node") is not installed.`,
        '  Fix: Reinstall mailbridge with its runtime: `npm install -g mailbridge` (without --omit=optional, --ignore-scripts or --allow-scripts), or `npm ci` in a checkout; or install Node.js 24 (https://nodejs.org) or the Debian package of mailbridge.',
      ];
  console.error(text.join('\n'));
  process.exit(1);
}
