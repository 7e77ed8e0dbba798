/**
 * The layout rules of DEVELOPERS.md, read from the imports of src/ (static, type-only, re-exports
 * and import('…') with a literal path, as TypeScript's own pre-processor finds them):
 *  - config/ is a leaf: it imports errors, i18n, log and util, and no capability;
 *  - no import cycle between the top-level folders of src/;
 *  - the sandbox takes from the product only config, errors, i18n and log;
 *  - the error catalogue imports nothing from the sandbox;
 *  - the config schema loads only zod, and the plug-in registries of `serve` no connector, IMAP,
 *    HTTP server or certificate library (read from what a child process really loads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

const SRC = resolve(import.meta.dirname, '../src');

interface Edge {
  file: string;
  target: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|mts|js|mjs)$/.test(e.name) ? [p] : [];
  });
}

/** Top-level folder of src/ a path lies in ('' for a file directly in src/, undefined outside src/). */
function room(path: string): string | undefined {
  const rel = relative(SRC, path);
  if (rel.startsWith('..')) return undefined;
  return rel.includes(sep) ? rel.split(sep)[0] : '';
}

/** Every import of src/ that leads to another top-level folder of src/, by folder pair. */
function crossings(): Map<string, Map<string, Edge[]>> {
  const out = new Map<string, Map<string, Edge[]>>();
  for (const file of sourceFiles(SRC)) {
    const from = room(file)!;
    for (const spec of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (!spec.fileName.startsWith('.')) continue;
      const target = resolve(dirname(file), spec.fileName);
      const to = room(target);
      if (to === undefined || to === from) continue;
      const byTarget = out.get(from) ?? new Map<string, Edge[]>();
      byTarget.set(to, [...(byTarget.get(to) ?? []), { file: relative(SRC, file), target: relative(SRC, target) }]);
      out.set(from, byTarget);
    }
  }
  return out;
}

const graph = crossings();

function importsOf(from: string): Map<string, Edge[]> {
  return graph.get(from) ?? new Map();
}

function describe(edges: Edge[]): string {
  return edges.map((e) => `    src/${e.file} -> src/${e.target}`).join('\n');
}

/** Imports of `from` into folders outside `allowed`, as lines for the failure message. */
function outside(from: string, allowed: ReadonlySet<string>): string[] {
  return [...importsOf(from)].filter(([to]) => !allowed.has(to)).map(([to, edges]) => `${from} -> ${to}:\n${describe(edges)}`);
}

test('the reader sees the imports it must judge', () => {
  // Without this, a reader that found nothing would let every rule below pass.
  assert.ok(importsOf('admin').has('app'), 'admin imports the composition root');
  assert.ok(importsOf('app').has('config'), 'the composition root imports config');
  assert.ok(importsOf('sandbox').has('errors'), 'the sandbox imports errors');
});

test('config/ is a leaf: it imports errors, i18n, log and util, no capability', () => {
  assert.deepEqual(outside('config', new Set(['errors', 'i18n', 'log', 'util'])), []);
});

test('no import cycle between the top-level folders of src/', () => {
  // Tarjan's strongly connected components over the folder graph: a component of two or more is a cycle.
  const folders = [...new Set([...graph.keys(), ...[...graph.values()].flatMap((m) => [...m.keys()])])].sort();
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of importsOf(v).keys()) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const f of folders) if (!index.has(f)) visit(f);
  const explained = cycles.map((c) => {
    const inside = new Set(c);
    const edges = c.flatMap((from) => [...importsOf(from)].filter(([to]) => inside.has(to)).map(([to, e]) => `${from} -> ${to}:\n${describe(e)}`));
    return `cycle ${c.join(', ')}:\n${edges.join('\n')}`;
  });
  assert.deepEqual(explained, []);
});

test('the sandbox takes from the product only config, errors, i18n and log', () => {
  assert.deepEqual(outside('sandbox', new Set(['config', 'errors', 'i18n', 'log'])), []);
});

test('the error catalogue imports nothing from the sandbox', () => {
  assert.deepEqual(
    [...importsOf('errors')].filter(([to]) => to === 'sandbox').map(([to, edges]) => `errors -> ${to}:\n${describe(edges)}`),
    [],
  );
});

/** The npm packages a process holds after importing `module` (what it really loads, type-only imports aside). */
function packagesLoadedBy(module: string): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = new Set();
    registerHooks({ load(url, ctx, next) { const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(url); if (m) seen.add(m[1]); return next(url, ctx); } });
    await import(${JSON.stringify(pathToFileURL(join(SRC, module)).href)});
    console.log(JSON.stringify([...seen].sort()));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[];
}

test('the config schema loads zod and nothing else: every command parses the config, so a schema that imports a server or a client puts it into every process', () => {
  assert.deepEqual(packagesLoadedBy('app/schema.ts'), ['zod']);
});

test('the relay and the gateway\'s plug-in registries load no connector, IMAP or HTTP server library: those load where a configuration uses them', () => {
  const loaded = packagesLoadedBy('app/plugins.ts');
  for (const pkg of ['imapflow', 'mailparser', 'fastify', 'node-forge', '@azure/msal-node']) assert.ok(!loaded.includes(pkg), `${pkg} in ${loaded.join(', ')}`);
  assert.ok(loaded.includes('smtp-server') || loaded.includes('nodemailer'), 'the probe sees the relay\'s own libraries');
});

test('the admin API (api/index.ts, registered at every serve start) loads no watcher, probe, PostgreSQL or certificate library: its status route reads the watch status, not the watch service', () => {
  const loaded = packagesLoadedBy('api/index.ts');
  for (const pkg of ['imapflow', 'fast-xml-parser', '@ewsjs/ntlm-client', 'pg', 'node-forge', 'fastify']) assert.ok(!loaded.includes(pkg), `${pkg} in ${loaded.join(', ')}`);
  assert.ok(loaded.includes('zod'), 'the probe sees the API\'s own schemas');
});

test('the gateway (server/index.ts) loads no probe, setup, PostgreSQL or certificate library until a check run, a setup run, a PostgreSQL store or a .pfx asks for it', () => {
  const loaded = packagesLoadedBy('server/index.ts');
  for (const pkg of ['imapflow', 'fast-xml-parser', '@ewsjs/ntlm-client', 'pg', 'node-forge']) assert.ok(!loaded.includes(pkg), `${pkg} in ${loaded.join(', ')}`);
  assert.ok(loaded.includes('fastify') && loaded.includes('@azure/msal-node'), 'the probe sees the gateway\'s own libraries');
});
