import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineEndingCheck } from '../../../src/relay/guard.ts';

function check(...chunks: string[]) {
  const c = new LineEndingCheck();
  for (const ch of chunks) c.feed(Buffer.from(ch, 'latin1'));
  c.end();
  return c.violation;
}

test('line-ending check: CR LF everywhere passes, however the data is split into chunks', () => {
  const msg = 'Subject: a\r\n\r\nline 1\r\n.dot\r\n\r\nlast\r\n';
  assert.equal(check(msg), undefined);
  for (let i = 1; i < msg.length; i++) assert.equal(check(msg.slice(0, i), msg.slice(i)), undefined, `split at ${i}`);
  assert.equal(check(...msg.split('')), undefined, 'one byte per chunk');
  assert.equal(check(''), undefined);
});

test('line-ending check: bare LF and bare CR are found with their line, also across chunk borders', () => {
  assert.deepEqual(check('a\r\nb\nc\r\n'), { what: 'LF', line: 2 });
  assert.deepEqual(check('\nx\r\n'), { what: 'LF', line: 1 });
  assert.deepEqual(check('a\r\nb\rc\r\n'), { what: 'CR', line: 2 });
  assert.deepEqual(check('a\r\nb\r', 'c\r\n'), { what: 'CR', line: 2 }, 'CR at a chunk end, no LF after it');
  assert.deepEqual(check('a\r\nb', '\n'), { what: 'LF', line: 2 }, 'LF at a chunk start without CR before it');
  assert.deepEqual(check('a\r\n\r\r\n'), { what: 'CR', line: 2 });
  assert.deepEqual(check('ends with CR\r'), { what: 'CR', line: 1 }, 'a CR at the very end');
  assert.deepEqual(check('x\r\n\n.\r\nMAIL FROM:<a@b>\r\n'), { what: 'LF', line: 2 });
});
