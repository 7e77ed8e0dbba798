import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImapSplitter, chomp, parseXoauth2, xoauth2, type SegmentInfo } from '../../../src/sandbox/exchange/imap-wire.ts';

/** Feeds `input` in the given chunk sizes and returns what comes out plus every segment seen. */
function run(input: Buffer, chunk: number, rewrite?: (s: SegmentInfo) => string | undefined, maxLine?: number) {
  const segs: SegmentInfo[] = [];
  const sp = new ImapSplitter({
    maxLine,
    onSegment: (s) => {
      segs.push(s);
      return rewrite?.(s);
    },
  });
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) out.push(...sp.push(input.subarray(i, i + chunk)));
  return { out: Buffer.concat(out), segs, sp };
}

const fetchResponse = (body: Buffer) =>
  Buffer.concat([Buffer.from(`* 1 FETCH (UID 7 BODY[] {${body.length}}\r\n`), body, Buffer.from(')\r\nA5 OK Fetch completed.\r\n')]);

test('literal bytes pass through untouched, whatever they contain and however the stream is chunked', () => {
  // The literal holds lines that look like the very responses the front rewrites.
  const body = Buffer.from('+ idling\r\n* CAPABILITY X\r\nA4 OK Idle completed.\r\n{5}\r\n\x00\xff binary\r\n', 'latin1');
  const input = fetchResponse(body);
  for (const chunk of [1, 2, 3, 7, 64, input.length]) {
    const rewrite = (s: SegmentInfo) => (s.first ? `[${chomp(s.text)}]\r\n` : undefined);
    const { out, segs } = run(input, chunk, rewrite);
    const expected = Buffer.concat([
      Buffer.from(`[* 1 FETCH (UID 7 BODY[] {${body.length}}]\r\n`),
      body,
      Buffer.from(')\r\n[A5 OK Fetch completed.]\r\n'),
    ]);
    assert.deepEqual(out, expected, `chunk size ${chunk}`);
    assert.deepEqual(
      segs.map((s) => [s.first, chomp(s.text)]),
      [
        [true, `* 1 FETCH (UID 7 BODY[] {${body.length}}`],
        [false, ')'],
        [true, 'A5 OK Fetch completed.'],
      ],
    );
    assert.deepEqual(segs[0]!.literal, { size: body.length, nonSync: false });
  }
});

test('LITERAL+ and binary literal markers are recognised; a zero-length literal continues the command', () => {
  const input = Buffer.from('A1 APPEND INBOX {3+}\r\nabcB1 X ~{0}\r\n\r\nC1 NOOP\r\n', 'latin1');
  const { out, segs } = run(input, 5);
  assert.deepEqual(out, input);
  assert.deepEqual(
    segs.map((s) => [s.first, chomp(s.text)]),
    [
      [true, 'A1 APPEND INBOX {3+}'],
      [false, 'B1 X ~{0}'],
      [false, ''],
      [true, 'C1 NOOP'],
    ],
  );
  assert.deepEqual(segs[0]!.literal, { size: 3, nonSync: true });
});

test('a rewrite may replace or drop a line; undefined keeps it', () => {
  const input = Buffer.from('* OK Still here\r\n+ idling\r\nA1 OK Idle completed (0.001 + 1.000 secs).\r\n');
  const { out } = run(input, 4, (s) => {
    const line = chomp(s.text);
    if (line === '* OK Still here') return '';
    if (line === '+ idling') return '+ IDLE accepted, awaiting DONE command.\r\n';
    return undefined;
  });
  assert.equal(out.toString(), '+ IDLE accepted, awaiting DONE command.\r\nA1 OK Idle completed (0.001 + 1.000 secs).\r\n');
});

test('an over-long line is passed on in pieces, never offered for rewriting, and a literal at its end is still found', () => {
  const long = '* SEARCH ' + Array.from({ length: 3000 }, (_, i) => i + 1).join(' ');
  const input = Buffer.from(`${long} {4}\r\nWXYZ\r\nA1 OK done\r\n`);
  const { out, segs } = run(input, 100, () => 'REWRITTEN\r\n', 1024);
  assert.equal(out.toString(), `${long} {4}\r\nWXYZREWRITTEN\r\nREWRITTEN\r\n`);
  assert.equal(segs[0]!.oversized, true);
  assert.deepEqual(segs[0]!.literal, { size: 4, nonSync: false });
  assert.equal(segs[1]!.first, false);
  assert.equal(segs[2]!.first, true);
});

test('a refused synchronizing literal can be cancelled, so the next command is seen as a command', () => {
  const sp = new ImapSplitter();
  sp.push(Buffer.from('A7 APPEND INBOX {999999}\r\n'));
  assert.equal(sp.awaitingSyncLiteral, true);
  assert.equal(sp.currentTag, 'A7');
  sp.cancelLiteral(); // the server said "A7 NO [TOOBIG] …" instead of "+"
  assert.equal(sp.awaitingSyncLiteral, false);
  const seen: SegmentInfo[] = [];
  const sp2 = new ImapSplitter({ onSegment: (s) => void seen.push(s) });
  sp2.push(Buffer.from('A7 APPEND INBOX {5}\r\n'));
  sp2.cancelLiteral();
  sp2.push(Buffer.from('A8 IDLE\r\n'));
  assert.deepEqual(
    seen.map((s) => [s.first, chomp(s.text)]),
    [
      [true, 'A7 APPEND INBOX {5}'],
      [true, 'A8 IDLE'],
    ],
  );
  // Once literal bytes flow, cancelling is refused (the bytes are real data).
  const sp3 = new ImapSplitter();
  sp3.push(Buffer.from('A9 APPEND INBOX {5}\r\nab'));
  sp3.cancelLiteral();
  assert.equal(sp3.awaitingSyncLiteral, false);
  const rest = sp3.push(Buffer.from('cde\r\n'));
  assert.equal(Buffer.concat(rest).toString(), 'cde\r\n');
});

test('XOAUTH2 payloads round-trip and malformed ones are rejected', () => {
  const b64 = xoauth2('alice@contoso.test', 'eyJ.abc.def');
  assert.deepEqual(parseXoauth2(b64), { user: 'alice@contoso.test', token: 'eyJ.abc.def' });
  // The example from Microsoft's documentation.
  assert.deepEqual(
    parseXoauth2('dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=='),
    { user: 'test@contoso.onmicrosoft.com', token: 'EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA' },
  );
  assert.equal(parseXoauth2(''), undefined);
  assert.equal(parseXoauth2('not base64!'), undefined);
  assert.equal(parseXoauth2(Buffer.from('user=a@b\x01\x01').toString('base64')), undefined);
  assert.equal(parseXoauth2(Buffer.from('n,a=a@b,\x01auth=Bearer t\x01\x01').toString('base64')), undefined);
});
