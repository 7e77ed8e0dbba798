#!/usr/bin/env node
// Launcher for `npx mailbridge`: mailbridge needs Node.js 24 (it runs its TypeScript sources
// directly). When started by an older system Node, re-run with the Node 24 that the `node`
// package installed next to mailbridge.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../src/admin/cli/main.ts', import.meta.url));
const major = Number(process.versions.node.split('.')[0]);
let node = process.execPath;
if (major < 24) {
  const bundled = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(bundled)) {
    console.error('mailbridge needs Node.js 24 or later. Run `npm ci` in the mailbridge folder first.');
    process.exit(1);
  }
  node = bundled;
}
const r = spawnSync(node, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
