/**
 * sandbox-admin's help lists its operations from one table (sandbox-admin.texts.json) in both
 * languages: the same operations in the same order, each description in one straight column.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandHelp } from '../../../src/admin/cli/command.ts';
import { command } from '../../../src/admin/cli/commands/sandbox-admin.ts';
import { LANGS } from '../../../src/i18n/index.ts';

const HEADING = { en: 'Operations:', de: 'Vorgänge:' };

function operationLines(lang: 'en' | 'de'): string[] {
  const lines = commandHelp(command, lang).split('\n');
  const start = lines.indexOf(HEADING[lang]);
  assert.ok(start >= 0, `${lang}: no "${HEADING[lang]}" in the help`);
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end);
}

test('sandbox-admin --help: the same operations in English and German, descriptions in one column', () => {
  const ops = Object.fromEntries(
    LANGS.map((lang) => [lang, operationLines(lang).flatMap((l) => (/^ {2}\S/.test(l) ? [l.trim().split(' ')[0]] : []))]),
  );
  assert.ok(ops.en!.length >= 20, `only ${ops.en!.length} operations listed`);
  assert.deepEqual(ops.de, ops.en);
  for (const op of ['state', 'grant-full-access', 'revoke-role', 'powershell']) assert.ok(ops.en!.includes(op), `${op} not listed`);
  const under = (line: string) => /^ {42}\S/.test(line);
  for (const lang of LANGS) {
    const lines = operationLines(lang);
    lines.forEach((line, i) => {
      if (under(line)) return;
      // An operation with its description at column 42, or alone with the description on the next line.
      const beside = /^ {2}\S/.test(line) && line.slice(40, 42) === '  ' && /\S/.test(line[42] ?? '') && !line.slice(2, 40).trimEnd().includes('  ');
      const alone = /^ {2}\S/.test(line) && !line.slice(2).includes('  ') && under(lines[i + 1] ?? '');
      assert.ok(beside || alone, `${lang}: "${line}" does not put its description at column 42`);
    });
  }
});
