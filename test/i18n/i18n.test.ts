import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectLang, format } from '../../src/i18n/index.ts';

test('language: --lang wins, then LC_ALL, LC_MESSAGES, LANG; German for any de locale', () => {
  assert.equal(detectLang('de', { LANG: 'en_US.UTF-8' }), 'de');
  assert.equal(detectLang(undefined, { LANG: 'de_DE.UTF-8' }), 'de');
  assert.equal(detectLang(undefined, { LC_ALL: 'en_GB.UTF-8', LANG: 'de_AT.UTF-8' }), 'en');
  assert.equal(detectLang(undefined, { LC_MESSAGES: 'de_CH' }), 'de');
  // Set but empty counts as unset (POSIX): an empty LC_ALL does not hide LANG.
  assert.equal(detectLang(undefined, { LC_ALL: '', LC_MESSAGES: '', LANG: 'de_DE.UTF-8' }), 'de');
  assert.equal(detectLang(undefined, {}), 'en');
});

test('format fills known placeholders and leaves unknown ones visible', () => {
  assert.equal(format('{a} and {b}', { a: 1 }), '1 and {b}');
});
