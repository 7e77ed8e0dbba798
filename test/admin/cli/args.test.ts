/**
 * The one command-line parser: typed values, one usage-error path (MB_CLI_USAGE followed by the
 * command's help, in English and German) and every command's help listing the options its parser
 * accepts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { helpColumns, noMoreArgs, parseCommandLine, subcommand, type OptionDefs } from '../../../src/admin/cli/args.ts';
import { commandHelp } from '../../../src/admin/cli/command.ts';
import { commands } from '../../../src/admin/cli/commands/index.ts';
import { MbError } from '../../../src/errors/index.ts';
import { LANGS } from '../../../src/i18n/index.ts';
import { runCli } from './harness.ts';

const defs = {
  port: { type: 'integer', value: 'N', min: 0, max: 65535, help: { en: 'port', de: 'Port' } },
  to: { type: 'string', value: 'A', multiple: true, help: { en: 'to', de: 'an' } },
  via: { type: 'string', value: 'V', choices: ['smtp', 'graph'], help: { en: 'via', de: 'über' } },
  json: { type: 'boolean', help: { en: 'json', de: 'JSON' } },
} satisfies OptionDefs;

function usageDetail(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MbError && err.code === 'MB_CLI_USAGE', String(err));
    return String(err.params.detail);
  }
  assert.fail('no usage error');
}

test('parseCommandLine: typed values, repeatable options, positionals and --', () => {
  const p = parseCommandLine('x', defs, ['sub', '--port', '25', '--to=a@x', '--to', 'b@x', '--json', '--', '--raw'], 'en');
  assert.deepEqual(p.positionals, ['sub', '--raw']);
  assert.equal(p.options.port, 25);
  assert.deepEqual(p.options.to, ['a@x', 'b@x']);
  assert.equal(p.options.json, true);
  assert.equal(p.options.via, undefined);
  const none = parseCommandLine('x', defs, [], 'en');
  assert.deepEqual(none.options, { to: [], json: false });
});

test('parseCommandLine: every mistake is MB_CLI_USAGE naming the option, in the chosen language', () => {
  const parse = (argv: string[], lang: 'en' | 'de' = 'en') => () => parseCommandLine('x', defs, argv, lang);
  assert.match(usageDetail(parse(['--frob'])), /unknown option --frob/);
  assert.match(usageDetail(parse(['--frob'], 'de')), /unbekannte Option --frob/);
  assert.match(usageDetail(parse(['--port'])), /--port needs a value \(N\)/);
  assert.match(usageDetail(parse(['--port', '--json'])), /--port needs a value/);
  assert.match(usageDetail(parse(['--port', 'abc'])), /--port abc: not a whole number/);
  assert.match(usageDetail(parse(['--port', '1.5'])), /not a whole number/);
  assert.match(usageDetail(parse(['--port', '70000'])), /from 0 to 65535/);
  assert.match(usageDetail(parse(['--port', '70000'], 'de')), /zwischen 0 und 65535/);
  assert.match(usageDetail(parse(['--port', '1', '--port', '2'])), /given twice/);
  assert.match(usageDetail(parse(['--via', 'pigeon'])), /one of smtp \| graph/);
  assert.match(usageDetail(parse(['--json=yes'])), /--json takes no value/);
});

test('subcommand and noMoreArgs: the shared usage errors of commands with subcommands, in both languages', () => {
  assert.equal(subcommand('config', 'en', 'show', ['check', 'schema', 'show']), 'show');
  assert.match(usageDetail(() => subcommand('config', 'en', undefined, ['check', 'schema', 'show'])), /^Say what to do: check, schema or show\.$/);
  assert.match(usageDetail(() => subcommand('config', 'de', undefined, ['check', 'schema', 'show'])), /^Es fehlt, was getan werden soll: check, schema oder show\.$/);
  assert.match(usageDetail(() => subcommand('secret', 'en', 'frob', ['set', 'list'])), /^Unknown subcommand: frob \(expected set or list\)$/);
  assert.match(usageDetail(() => subcommand('secret', 'de', 'frob', ['set', 'list'])), /^Unbekannter Unterbefehl: frob \(erwartet: set oder list\)$/);
  assert.doesNotThrow(() => noMoreArgs('serve', 'en', []));
  assert.match(usageDetail(() => noMoreArgs('serve', 'de', ['x', 'y'])), /^unerwartetes Argument x$/);
});

test('helpColumns: the right column straight, beside a left one that leaves two spaces, else on the next line', () => {
  assert.deepEqual(helpColumns([['state', 'what there is'], ['grant <mailbox>', 'Add-MailboxPermission\nand more'], ['register <appId> <objectId>', 'New-ServicePrincipal']], 18), [
    '  state             what there is',
    '  grant <mailbox>   Add-MailboxPermission\n                    and more',
    '  register <appId> <objectId>\n                    New-ServicePrincipal',
  ]);
});

test('the CLI: a usage error exits 2 with MB_CLI_USAGE and then the command help (en, de)', async () => {
  const cases: Array<{ args: string[]; detail: RegExp; help: RegExp }> = [
    { args: ['serve', '--port', 'abc'], detail: /--port abc: not a whole number/, help: /Usage: mailbridge serve/ },
    { args: ['--lang', 'de', 'serve', '--port', 'abc'], detail: /--port abc: keine ganze Zahl/, help: /Aufruf: mailbridge serve/ },
    { args: ['token', 'sandbox', '--frob'], detail: /unknown option --frob/, help: /Usage: mailbridge token/ },
    { args: ['--lang', 'de', 'queue', 'list', '--limit'], detail: /--limit braucht einen Wert/, help: /Aufruf: mailbridge queue/ },
    { args: ['watch', '--last', '-1'], detail: /--last -1: must be at least 0/, help: /Usage: mailbridge watch/ },
    { args: ['send', '--from', 'a@contoso.test', '--to', 'b@contoso.test', '--via', 'pigeon'], detail: /--via pigeon: one of smtp \| graph/, help: /Usage: mailbridge send/ },
    { args: ['--lang', 'de', 'config', 'check', 'extra'], detail: /unerwartetes Argument extra/, help: /Aufruf: mailbridge config/ },
    { args: ['queue', 'frob'], detail: /Unknown subcommand: frob \(expected list, show, retry, hold, release or delete\)/, help: /Usage: mailbridge queue/ },
    { args: ['relay-user'], detail: /Say what to do: add or passwd\./, help: /Usage: mailbridge relay-user/ },
  ];
  for (const c of cases) {
    const r = await runCli(c.args);
    assert.equal(r.code, 2, `${c.args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /MB_CLI_USAGE/);
    assert.match(r.stderr, c.detail, c.args.join(' '));
    assert.match(r.stderr, c.help, c.args.join(' '));
    assert.match(r.stderr, /(Options|Optionen):\n {2}--/, c.args.join(' '));
    assert.equal(r.stdout, '');
  }
});

test('every command: its help lists each option it accepts, and names no option it does not', async () => {
  const globals = new Set(['--help', '--lang', '--config']);
  for (const [name, load] of Object.entries(commands)) {
    const command = await load();
    for (const lang of LANGS) {
      const help = commandHelp(command, lang);
      assert.ok(!help.includes('{options}'), `${name} (${lang}): option list not rendered`);
      for (const option of Object.keys(command.options)) {
        assert.match(help, new RegExp(`\\n {2}(-\\w, )?--${option}\\b`), `${name} (${lang}) help does not list --${option}`);
      }
      for (const [mention] of help.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)) {
        assert.ok(globals.has(mention) || mention.slice(2) in command.options, `${name} (${lang}) help mentions ${mention}, which it does not accept`);
      }
    }
  }
});
