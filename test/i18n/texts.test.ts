/**
 * The texts files of src/ (<module>.texts.json beside <module>.ts): tables an admin reads, kept as data
 * beside the code that shows them, each leaf { "en": "…", "de": "…" } so a translator reviews both
 * languages side by side. TypeScript checks the leaves a module reads; this walk checks every leaf of
 * every file, read or not, so a half-translated entry cannot wait in a file until someone uses it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { LANGS } from '../../src/i18n/index.ts';

const SRC = resolve(import.meta.dirname, '../../src');

function textsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return textsFiles(path);
    return e.name.endsWith('.texts.json') ? [path] : [];
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every place in a texts table that is not a group of entries or a { en, de } leaf with both texts. */
function problems(value: unknown, at = '$'): string[] {
  if (!isObject(value)) return [`${at}: ${JSON.stringify(value)} is neither a group of texts nor { en, de }`];
  const keys = Object.keys(value);
  if (keys.some((k) => (LANGS as readonly string[]).includes(k))) {
    const out: string[] = [];
    for (const lang of LANGS) {
      const text = value[lang];
      if (typeof text !== 'string' || text.trim() === '') out.push(`${at}: no ${lang} text`);
    }
    for (const k of keys) if (!(LANGS as readonly string[]).includes(k)) out.push(`${at}.${k}: a text leaf holds only ${LANGS.join(' and ')}`);
    return out;
  }
  if (keys.length === 0) return [`${at}: an empty group`];
  return keys.flatMap((k) => problems(value[k], `${at}.${k}`));
}

test('the walk finds what it must refuse', () => {
  assert.deepEqual(problems({ a: { en: 'Sign in', de: 'Anmelden' }, b: { c: { en: 'Next', de: 'Weiter' } } }), []);
  assert.deepEqual(problems({ a: { en: 'Sign in' } }), ['$.a: no de text']);
  assert.deepEqual(problems({ a: { en: 'Sign in', de: ' ' } }), ['$.a: no de text']);
  assert.deepEqual(problems({ a: { en: 'Sign in', de: 'Anmelden', fr: 'Se connecter' } }), ['$.a.fr: a text leaf holds only en and de']);
  assert.deepEqual(problems({ a: 'Sign in' }), ['$.a: "Sign in" is neither a group of texts nor { en, de }']);
  assert.deepEqual(problems({ a: [{ en: 'x', de: 'y' }] }), ['$.a: [{"en":"x","de":"y"}] is neither a group of texts nor { en, de }']);
  assert.deepEqual(problems({ a: {} }), ['$.a: an empty group']);
});

test('every leaf of every texts file under src/ has an English and a German text, and nothing else', () => {
  const files = textsFiles(SRC).map((f) => relative(SRC, f));
  // The files this walk exists for; a walk that found none would pass for nothing.
  for (const known of ['sandbox/entra/pages.texts.json']) assert.ok(files.includes(known), `${known} not found among ${files.join(', ')}`);
  for (const file of files) {
    const found = problems(JSON.parse(readFileSync(join(SRC, file), 'utf8')));
    assert.deepEqual(found, [], `${file}:\n${found.join('\n')}`);
  }
});
