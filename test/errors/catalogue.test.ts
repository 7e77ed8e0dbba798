import { test } from 'node:test';
import assert from 'node:assert/strict';
import { catalogue, explain, MbError, renderText, toMbError } from '../../src/errors/index.ts';
import { LANGS } from '../../src/i18n/index.ts';
import { registerSecret } from '../../src/log/redact.ts';

test('every catalogue entry has a code of the MB_ form and non-empty title, cause and fix in every language', () => {
  for (const [code, entry] of Object.entries(catalogue)) {
    assert.match(code, /^MB_[A-Z0-9_]+$/);
    assert.ok(entry.http >= 400 && entry.http < 600, code);
    for (const lang of LANGS) {
      for (const part of ['title', 'cause', 'fix'] as const) {
        assert.ok(entry[part][lang].trim().length > 0, `${code}.${part}.${lang}`);
      }
    }
    // The German text is a translation, not a copy (placeholders-only texts excepted).
    if (entry.fix.en.replace(/\{\w+\}/g, '').trim()) assert.notEqual(entry.fix.en, entry.fix.de, `${code} fix not translated`);
  }
});

test('placeholders used in German exist in English and vice versa', () => {
  const names = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const [code, entry] of Object.entries(catalogue)) {
    for (const part of ['title', 'cause', 'fix'] as const) {
      assert.deepEqual(names(entry[part].de), names(entry[part].en), `${code}.${part}`);
    }
  }
});

test('MbError renders in both languages with code, cause and fix', () => {
  const e = new MbError('MB_CLI_UNKNOWN_COMMAND', { command: 'frobnicate' });
  assert.equal(e.http, 400);
  const de = renderText(e.explain('de'), 'de');
  assert.match(de, /^MB_CLI_UNKNOWN_COMMAND: Unbekannter Befehl/);
  assert.match(de, /Ursache: .*frobnicate/);
  assert.match(de, /Behebung: /);
  assert.match(renderText(e.explain('en'), 'en'), /Fix: Run `mailbridge --help`/);
});

test('a parameter given as { en, de } is shown in the language rendered, and scrubbed in both', () => {
  const secret = 'Geheim-9f2c71d0a4';
  registerSecret(secret);
  const e = new MbError('MB_CLI_UNKNOWN_COMMAND', { command: { en: `relay route ${secret}`, de: `Relay-Route ${secret}` } });
  assert.match(e.explain('de').cause, /Relay-Route /);
  assert.doesNotMatch(e.explain('de').cause, /relay route|Geheim-9f2c71d0a4/);
  assert.match(e.explain('en').cause, /relay route /);
  assert.match(e.message, /relay route /, 'the message (logs, String(err)) is English');
  assert.ok(!JSON.stringify({ params: e.params, message: e.message }).includes(secret));
});

test('unknown thrown values become MB_INTERNAL, unknown codes explain as MB_INTERNAL texts', () => {
  const e = toMbError(new TypeError('boom'));
  assert.equal(e.code, 'MB_INTERNAL');
  assert.match(e.explain('en').cause, /boom/);
  assert.equal(explain('MB_DOES_NOT_EXIST', { detail: 'x' }, 'en').title, 'Internal error');
});
