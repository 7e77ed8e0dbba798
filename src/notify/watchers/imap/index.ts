/**
 * The IMAP IDLE watcher: the notify fallback that needs no inbound port and works with any IMAP
 * server: Exchange Online (XOAUTH2 with the connection's app token, IMAP.AccessAsApp), Exchange
 * Server and Dovecot on premises (XOAUTH2 or user/password).
 *
 * Strategy
 * - One IMAP connection per watched folder (IDLE watches only the selected folder), each run by a
 *   FolderWatch (folder.ts): EXAMINE, catch up from the folder's checkpoint, IDLE (restarted every
 *   idleRestartSeconds, below Exchange's 29 minutes), sync again on every EXISTS, FETCH, EXPUNGE or
 *   VANISHED the server sends and every resyncSeconds; publish the events, then move the checkpoint.
 * - Reconnects with exponential back-off and jitter per folder; a throttling reply's suggested wait
 *   and the slow retry of permission problems (they take up to 30 minutes to apply) are honoured.
 * - At most `concurrentLogins` logins and first catch-ups run at once per watcher, so a listener
 *   with a thousand mailboxes, started or reconnected after an outage, does not storm the server.
 * - CONDSTORE/QRESYNC are used when the server announces them (Dovecot does); Exchange Online
 *   announces neither, and then the unseen sets are compared (folder.ts says how changes are keyed).
 * - Failures become MB codes: the connector's (src/errors/entries/connector.ts) where the fix is the
 *   same (token refused, "authenticated but not connected" with its Add-MailboxPermission /
 *   New-ServicePrincipal lines, server unreachable, session lost), watchImap's otherwise.
 *
 * Limits: the mailbox's status is its worst folder's; a folder is watched by one connection, so
 * Exchange's limit of about 20 IMAP sessions per mailbox bounds the folders of one mailbox (shared
 * with every other client). Memory per watched folder: one imapflow connection (socket, TLS state,
 * parser) and the checkpoint's UID ranges; see the report in test/notify/watchers/imap/.
 */
import type { MbError } from '../../../errors/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import { Semaphore } from '../../../util/limits.ts';
import type { WatchGroupConfig } from '../config.ts';
import type { MailboxStatus, TokenProvider, WatchState, WatchedMailbox, Watcher, WatcherContext } from '../types.ts';
import type { WatcherPlugin } from '../plugin.ts';
import type { ImapWatchOptions } from './config.ts';
import { FolderWatch, type Credentials } from './folder.ts';
import type { ProxySettings } from '../../../net/proxy.ts';

export { imapWatchSchema, type ImapWatchOptions } from './config.ts';
export { KV_NAMESPACE as IMAP_KV_NAMESPACE, checkpointKey as imapCheckpointKey, type StoredCheckpoint } from './folder.ts';

export interface ImapWatcherDeps {
  listener: string;
  mailboxes: WatchedMailbox[];
  tokens: TokenProvider;
  options: ImapWatchOptions;
  ctx: WatcherContext;
  /** Contents of options.caFile (PEM), read by the caller. */
  ca?: string;
  /** The listener's connection's proxy settings (IMAP through HTTP CONNECT). */
  proxy?: ProxySettings;
  /** Clear password for a mailbox when options.auth is { user, password } (the caller reveals the stored secret). */
  password?: (mailbox: string) => string;
}

export interface ImapWatcher extends Watcher {
  /** Test hook: the folder watches, to drop a connection or count reconnects. */
  readonly folders: readonly FolderWatch[];
}

/** Worse first: the state a mailbox shows when its folders differ. */
const SEVERITY: WatchState[] = ['failed', 'reconnecting', 'starting', 'catching-up', 'watching', 'stopped'];

/**
 * An imap group's watcher for one listener: Exchange Online's IMAP of the connection's cloud unless
 * the group names a host; the group's own login (imap.auth: { user, password }) is a secret like a
 * listener's password.
 */
export const imapWatcherPlugin: WatcherPlugin<Extract<WatchGroupConfig, { kind: 'imap' }>> = (g, b) => {
  const ca = b.ca(g.imap.caFile);
  const options = { ...g.imap, ...(g.imap.host === undefined && b.cloud ? { host: b.cloud.exchange.imap.host } : {}) };
  if (typeof options.auth === 'object') {
    options.auth = { ...options.auth, password: b.reveal(options.auth.password, `notify.watch.groups.${b.group}.imap.auth.password`) };
    registerSecret(options.auth.password);
  }
  const password = b.password;
  return createImapWatcher({
    listener: b.listener,
    mailboxes: b.mailboxes,
    tokens: b.tokens('exchange'),
    options,
    ctx: b.ctx,
    proxy: b.proxy,
    ...(ca ? { ca } : {}),
    ...(password ? { password: () => password } : {}),
  });
};

export function createImapWatcher(deps: ImapWatcherDeps): ImapWatcher {
  const { options, ctx } = deps;
  const host = options.host ?? 'outlook.office365.com';
  const log = ctx.log.child({ watcher: 'imap', listener: deps.listener });
  const logins = new Semaphore(options.concurrentLogins);

  const credentials = (mailbox: string) => async (): Promise<Credentials> => {
    if (options.auth === 'xoauth2') {
      const token = await deps.tokens(mailbox);
      registerSecret(token);
      return { user: mailbox, accessToken: token };
    }
    const pass = deps.password ? deps.password(mailbox) : options.auth.password;
    registerSecret(pass);
    return { user: options.auth.user.replaceAll('{mailbox}', mailbox), pass };
  };

  const folders: FolderWatch[] = [];
  for (const mb of deps.mailboxes) {
    const address = mb.address.toLowerCase();
    for (const folder of new Set(mb.folders)) {
      folders.push(new FolderWatch({ listener: deps.listener, mailbox: address, folder, host, options, ca: deps.ca, ...(deps.proxy ? { proxy: deps.proxy } : {}), credentials: credentials(address), ctx, logins, log }));
    }
  }
  let started = false;

  return {
    kind: 'imap',
    listener: deps.listener,
    folders,
    async start() {
      if (started) return;
      started = true;
      for (const f of folders) f.start();
      await Promise.all(folders.map((f) => f.ready));
    },
    status(): MailboxStatus[] {
      const byMailbox = new Map<string, FolderWatch[]>();
      for (const f of folders) byMailbox.set(f.mailbox, [...(byMailbox.get(f.mailbox) ?? []), f]);
      return [...byMailbox].map(([mailbox, fs]) => {
        const worst = fs.reduce((a, b) => (SEVERITY.indexOf(b.state) < SEVERITY.indexOf(a.state) ? b : a));
        const withError = fs.filter((f) => f.error).sort((a, b) => b.since - a.since)[0];
        const out: MailboxStatus = { mailbox, listener: deps.listener, state: worst.state, since: new Date(worst.since).toISOString() };
        if (withError?.error) out.error = { code: withError.error.code, message: render(withError.error, withError.folder) };
        return out;
      });
    },
    async close() {
      await Promise.all(folders.map((f) => f.stop()));
    },
  };
}

function render(e: MbError, folder: string): string {
  return `${folder}: ${e.message}`;
}
