/**
 * Many mailboxes in one instance: 150 mailboxes of one connection through a real Dovecot, with the
 * per-connection limits on logins and on mailboxes fetched at once, and the per-mailbox session
 * limit shared by two connectors that read the same mailboxes. Every message arrives once per
 * connector, and the observed concurrency never exceeds a limit (while it does use more than one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSharedLimits, imapSource, runConnector } from '../../src/connector/index.ts';
import type { SourceFactory, SourceSession } from '../../src/connector/types.ts';
import { append, connectorConfig, maildirFiles, makeMessage, startRig, tempStore, type Rig } from './helpers.ts';
import { tempDir } from '../support/temp.ts';
import { forFile } from '../support/rig.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;

forFile(async () => (rig = await startRig()));
forFile(async () => (st = await tempStore()));

interface Gauge {
  now: number;
  peak: number;
}
const gauge = (): Gauge => ({ now: 0, peak: 0 });
const up = (g: Gauge) => {
  g.now++;
  g.peak = Math.max(g.peak, g.now);
};

/** The real IMAP source, counting logins in progress, sessions per mailbox and fetches at once. */
function counted(inner: SourceFactory, logins: Gauge, fetching: Gauge, perMailbox: Map<string, Gauge>): SourceFactory {
  return {
    kind: inner.kind,
    description: inner.description,
    async open(mailbox, signal) {
      up(logins);
      let s: SourceSession;
      try {
        s = await inner.open(mailbox, signal);
      } finally {
        logins.now--;
      }
      const g = perMailbox.get(mailbox) ?? gauge();
      perMailbox.set(mailbox, g);
      up(g);
      return {
        mailbox: s.mailbox,
        get closed() {
          return s.closed;
        },
        open: (f) => s.open(f),
        list: (f, from) => s.list(f, from),
        async fetch(f, items) {
          up(fetching);
          try {
            return await s.fetch(f, items);
          } finally {
            fetching.now--;
          }
        },
        act: (f, a, i) => s.act(f, a, i),
        wait: (f, ms, sig) => s.wait(f, ms, sig),
        async close() {
          g.now--;
          await s.close();
        },
      };
    },
  };
}

test('150 mailboxes, two connectors: every message once per connector, logins ≤ 4, mailboxes fetched at once ≤ 8, one session per mailbox', { timeout: 240_000 }, async () => {
  const boxes = Array.from({ length: 150 }, (_, i) => `scale${String(i).padStart(3, '0')}@contoso.test`);
  for (const b of boxes) await append(rig, b, 'INBOX', [makeMessage(1, { to: b }), makeMessage(2, { to: b })]);
  const limits = createSharedLimits({ logins: 4, mailboxes: 8, sessionsPerMailbox: 1 });
  const logins = gauge();
  const fetching = gauge();
  const perMailbox = new Map<string, Gauge>();
  const dirs = [tempDir('mb-scale-a-'), tempDir('mb-scale-b-')];
  try {
    const runs = dirs.map((d, i) => {
      const config = connectorConfig(rig, { mailboxes: boxes, destination: { kind: 'maildir', path: d.path }, after: { action: 'none' } });
      const source = counted(imapSource({ connector: `scale-${i}`, host: '127.0.0.1', port: rig.dovecot.ports.imap, tls: 'none', tokens: rig.tokens, idle: false }), logins, fetching, perMailbox);
      return runConnector({ plugins: connectorPlugins, name: `scale-${i}`, config, repo: st.store.checkpoints, tokens: rig.tokens, source, limits }, { once: true });
    });
    const summaries = await Promise.all(runs);
    for (const s of summaries) {
      assert.deepEqual(s.errors.map((e) => e.error.message), []);
      assert.equal(s.delivered, 300);
    }
    for (const d of dirs) {
      const files = maildirFiles(d.path);
      assert.equal(files.length, 300);
      assert.equal(new Set(files.map((f) => f.raw.toString('latin1'))).size, 300);
    }
    assert.ok(logins.peak <= 4 && logins.peak > 1, `logins at once: ${logins.peak}`);
    assert.ok(fetching.peak <= 8 && fetching.peak > 1, `mailboxes fetched at once: ${fetching.peak}`);
    const sessionPeak = Math.max(...[...perMailbox.values()].map((g) => g.peak));
    assert.equal(sessionPeak, 1, 'two connectors never had the same mailbox open at once');
    assert.equal(perMailbox.size, 150);
  } finally {
    for (const d of dirs) d.remove();
  }
});
