/**
 * The guides cannot drift from the program: every shell block and config snippet in docs/<lang>/
 * (the hand-written pages; the generated references have their own test) is marked and is either
 * run or validated.
 *
 *   ```sh mb-test [background] [until="re"] [expect="re"] [exit=N]
 *       run with bash -e in a temp folder, one per language, the pages in PAGE_ORDER one after the
 *       other (as an admin reads them: the sandbox started in "Getting started" serves the guides);
 *       `mailbridge` on PATH is this checkout. exit: the status expected (default 0); expect: a
 *       regular expression the output must match; until: the block is run again (bounded, as an
 *       admin looks again) until its output matches, for what happens in the background.
 *       background: started and kept running until the language is done, once its output matches
 *       `until` (serve, the sandbox). The documented ports 2525 and 8080 are replaced by free ones,
 *       as other tests share this machine.
 *   ```sh mb-check
 *       needs a real tenant, root or another machine: not run, but every `mailbridge …` line must
 *       parse against the command registry (command and options), and every other line must start
 *       with a tool from EXTERNAL.
 *   ```yaml mb-test
 *       a mailbridge.yaml (or part of one), checked by the config validator as `config check` does
 *       (`clientId: new` is what setup fills in).
 * Any other sh/bash/yaml block in a guide fails the test. English pages run with LANG=C, German ones
 * with LANG=de_DE.UTF-8, so their expectations are the German output.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { analyzeText } from '../../src/app/config.ts';
import { configSchema } from '../../src/app/schema.ts';
import { setupWillCreate } from '../../src/setup/index.ts';
import { commands } from '../../src/admin/cli/commands/index.ts';
import { parseCommandLine } from '../../src/admin/cli/args.ts';
import { LANGS, type Lang } from '../../src/i18n/index.ts';
import { MAIN, NODE } from '../admin/cli/harness.ts';
import { slug } from '../../src/docs/index.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';

const DOCS = new URL('../../docs/', import.meta.url);
/** Pages whose runnable blocks build on each other, in this order; every other page follows. */
const PAGE_ORDER = ['getting-started.md', 'guides/enaio.md', 'guides/securepoint-utm.md', 'guides/maas360.md', 'guides/owa-badge.md', 'guides/cmxorganize.md'];
/** Tools a guide may name in an mb-check block besides `mailbridge`. */
const EXTERNAL = ['sudo', 'apt', 'systemctl', 'journalctl', 'podman', 'docker', 'npm', 'pwsh', 'curl', 'openssl', 'scripts/package/deb.sh', 'scripts/package/pack.sh', 'cp', 'install', 'tar', 'sievec', 'pg_dump', 'pg_restore', 'sqlite3', 'echo', 'chmod', 'chown', 'mkdir', 'ls', 'cat', 'export', 'POSTGRES_PASSWORD=…'];

interface Block {
  page: string;
  lang: string;
  info: string;
  attrs: Record<string, string>;
  text: string;
  line: number;
}

function pagesOf(lang: Lang): string[] {
  const all = readdirSync(new URL(`${lang}/`, DOCS), { recursive: true, encoding: 'utf8' })
    .filter((p) => p.endsWith('.md') && !p.startsWith('errors/') && !p.startsWith('reference/'))
    .sort();
  return [...PAGE_ORDER.filter((p) => all.includes(p)), ...all.filter((p) => !PAGE_ORDER.includes(p))];
}

function blocksOf(lang: Lang, page: string): Block[] {
  const text = readFileSync(new URL(`${lang}/${page}`, DOCS), 'utf8');
  const blocks: Block[] = [];
  for (const m of text.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)) {
    const info = m[1]!.trim();
    const attrs: Record<string, string> = {};
    for (const a of info.matchAll(/(\w+)=(?:"([^"]*)"|(\S+))/g)) attrs[a[1]!] = a[2] ?? a[3]!;
    blocks.push({ page: `${lang}/${page}`, lang: info.split(/\s+/)[0] ?? '', info, attrs, text: m[2]!, line: text.slice(0, m.index).split('\n').length });
  }
  return blocks;
}

const where = (b: Block) => `${b.page}:${b.line}`;

/**
 * The command lines of a block as shell words: quotes and backslash escapes as sh reads them, a
 * backslash-newline joins lines, a newline outside quotes ends a command, `#` at a word's start
 * begins a comment (enough for the command lines guides show).
 */
function commandLines(text: string): string[][] {
  const lines: string[][] = [];
  let words: string[] = [];
  let cur = '';
  let quote = '';
  let started = false;
  let comment = false;
  const endWord = () => {
    if (started) words.push(cur);
    cur = '';
    started = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (comment) {
      if (c === '\n') {
        comment = false;
        lines.push(words);
        words = [];
      }
    } else if (quote) {
      if (c === quote) quote = '';
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      started = true;
    } else if (c === '#' && !started) comment = true;
    else if (c === '\\' && text[i + 1] === '\n') i++;
    else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      started = true;
    } else if (c === '\n') {
      endWord();
      lines.push(words);
      words = [];
    } else if (/\s/.test(c)) endWord();
    else {
      cur += c;
      started = true;
    }
  }
  endWord();
  lines.push(words);
  return lines.filter((l) => l.length > 0);
}

/** Checks one `mailbridge …` command line against the registry; returns what is wrong, or ''. */
async function checkMailbridgeLine(argv: string[]): Promise<string> {
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (['--config', '--lang', '--log-format'].includes(argv[i]!)) i++;
    else rest.push(argv[i]!);
  }
  if (rest[0] === '--version' || rest[0] === '--help') return '';
  const load = commands[rest[0] ?? ''];
  if (!load) return `no command ${rest[0]}`;
  const command = await load();
  if (rest.includes('--help')) return '';
  try {
    parseCommandLine(command.name, command.options, rest.slice(1), 'en');
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

for (const lang of LANGS) {
  const pages = pagesOf(lang);
  const blocks = pages.flatMap((p) => blocksOf(lang, p));

  test(`${lang}: every shell and config block of a guide is marked to be run or checked`, () => {
    assert.ok(pages.includes('getting-started.md') && pages.some((p) => p.startsWith('guides/')), pages.join(', '));
    const unmarked = blocks.filter((b) => /^(sh|bash|shell|console|yaml|yml|powershell|ps1)$/.test(b.lang) && !/\bmb-(test|check)\b/.test(b.info));
    assert.deepEqual(unmarked.map(where), []);
    assert.deepEqual(blocks.filter((b) => b.lang === 'yaml' && /\bmb-check\b/.test(b.info)).map(where), [], 'config snippets are validated: yaml mb-test');
  });

  test(`${lang}: every config snippet passes the config validator`, () => {
    const yaml = blocks.filter((b) => b.lang === 'yaml' && /\bmb-test\b/.test(b.info));
    assert.ok(yaml.length >= 5, `${lang} guides show their configuration`);
    for (const b of yaml) {
      const result = configSchema.safeParse(parse(b.text));
      assert.ok(result.success, `${where(b)}\n${JSON.stringify(result.error?.issues, null, 2)}`);
      // enc:v1:… stands for a sealed secret; errors about files and secrets that exist only on the admin's machine aside, nothing may be wrong.
      const problems = analyzeText(b.text, b.page, {}, /clientId: new\b/.test(b.text) ? { relax: setupWillCreate } : {}).errors;
      assert.deepEqual(problems.map((p) => `${p.code} ${p.path}`), [], `${where(b)}: ${b.text}`);
    }
  });

  test(`${lang}: every command line of a not-run block is one the program accepts`, async () => {
    const checked = blocks.filter((b) => /\bmb-check\b/.test(b.info));
    assert.ok(checked.length >= 5);
    for (const b of checked) {
      for (const argv of commandLines(b.text)) {
        const raw = argv.join(' ');
        const cmd = argv[0] === 'sudo' ? argv.slice(1) : argv;
        if (cmd[0] === 'mailbridge') {
          const wrong = await checkMailbridgeLine(cmd.slice(1));
          assert.equal(wrong, '', `${where(b)}: ${raw}`);
        } else {
          assert.ok(EXTERNAL.includes(cmd[0]!) || /^[A-Z_]+=/.test(cmd[0]!), `${where(b)}: ${raw} (not a mailbridge command; add the tool to EXTERNAL if a guide really needs it)`);
        }
      }
    }
  });

  test(`${lang}: the runnable blocks run against the sandbox`, { timeout: 600_000 }, async () => {
    const runnable = blocks.filter((b) => b.lang === 'sh' && /\bmb-test\b/.test(b.info));
    assert.ok(runnable.length >= 15, `${lang}: ${runnable.length} runnable blocks`);
    // Dovecot's vmail user must reach the sandbox folder below it.
    const dir = mkdtempSync(join(tmpdir(), `mb-docs-${lang}-`));
    chmodSync(dir, 0o755);
    const bin = join(dir, '.bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'mailbridge'), `#!/bin/sh\nexec '${NODE}' '${MAIN}' "$@"\n`, { mode: 0o755 });
    const env = { PATH: `${bin}:${process.env.PATH}`, HOME: dir, LANG: lang === 'de' ? 'de_DE.UTF-8' : 'C' };
    const ports: Record<string, string> = { '2525': String(await freePort()), '8080': String(await freePort()) };
    const background: ChildProcess[] = [];
    const stop = async () => {
      // Latest first: serve before the sandbox it talks to.
      for (const child of background.reverse()) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        const exited = new Promise((r) => child.once('exit', r));
        process.kill(-child.pid!, 'SIGINT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000).unref())]);
        if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
      }
      background.length = 0;
    };
    after(stop);
    try {
      for (const b of runnable) {
        const script = b.text.replace(/\b(2525|8080)\b/g, (p) => ports[p]!);
        if (/\bbackground\b/.test(b.info)) {
          const child = spawn('bash', ['-c', `exec ${script.trim()}`], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
          background.push(child);
          let out = '';
          child.stdout!.on('data', (d) => (out += d));
          child.stderr!.on('data', (d) => (out += d));
          const ready = new RegExp(b.attrs.until ?? '.');
          await waitFor(() => ready.test(out) || child.exitCode !== null, 120_000, () => `${where(b)} to print ${ready}: ${out}`, 100);
          assert.equal(child.exitCode, null, `${where(b)} ended: ${out}`);
          continue;
        }
        const run = () =>
          new Promise<{ code: number; out: string }>((resolve) => {
            const child = spawn('bash', ['-e', '-c', script], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
            let out = '';
            child.stdout.on('data', (d) => (out += d));
            child.stderr.on('data', (d) => (out += d));
            child.on('close', (code) => resolve({ code: code ?? -1, out }));
          });
        const until = b.attrs.until ? new RegExp(b.attrs.until) : undefined;
        let result = await run();
        if (until) {
          await waitFor(async () => until.test(result.out) || until.test((result = await run()).out), 60_000, () => `${where(b)} to print ${until}: ${result.out}`, 500);
        }
        assert.equal(result.code, Number(b.attrs.exit ?? 0), `${where(b)} exit status:\n${script}\n${result.out}`);
        if (b.attrs.expect) assert.match(result.out, new RegExp(b.attrs.expect), `${where(b)}:\n${script}`);
      }
    } finally {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('docs/en and docs/de have the same pages, with as many headings and code blocks each', () => {
  const shape = (lang: Lang) =>
    Object.fromEntries(
      pagesOf(lang).map((p) => {
        const text = readFileSync(new URL(`${lang}/${p}`, DOCS), 'utf8');
        return [p, { headings: text.match(/^#+ /gm)?.length ?? 0, blocks: blocksOf(lang, p).map((b) => b.info.replace(/(until|expect)="[^"]*"/g, '$1')) }];
      }),
    );
  assert.deepEqual(shape('de'), shape('en'));
});

test('every link between the pages of docs/ (and from the README) leads to a page (and a heading) that exists', () => {
  const pages = [...readdirSync(DOCS, { recursive: true, encoding: 'utf8' }).filter((p) => p.endsWith('.md')).map((p) => new URL(p, DOCS)), new URL('../README.md', DOCS)];
  const headings = new Map(pages.map((u) => [u.href, new Set([...readFileSync(u, 'utf8').matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1]!)))]));
  const broken: string[] = [];
  for (const page of pages) {
    const text = readFileSync(page, 'utf8').replace(/^```[\s\S]*?^```$/gm, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const href = m[1]!;
      if (/^[a-z]+:/i.test(href)) continue;
      const [path, anchor] = href.split('#') as [string, string | undefined];
      const target = path === '' ? page : new URL(path, page);
      const name = `${page.pathname.slice(DOCS.pathname.length - 5)}: ${href}`;
      let exists = true;
      try {
        readFileSync(target);
      } catch {
        exists = false;
      }
      if (!exists) broken.push(name);
      else if (anchor && target.pathname.endsWith('.md') && !headings.get(target.href)?.has(anchor)) broken.push(`${name} (no such heading)`);
    }
  }
  assert.deepEqual(broken, []);
});
