/**
 * Notify settings that would fail or silently do nothing, found before they do: what `config
 * check` reports (and `serve` refuses before it starts anything), what the subscriptions API warns
 * about, and what `mailbridge watch` lists.
 *
 * - A listener pool over capacity: more mailboxes in a group than its listeners hold together
 *   (MB_NOTIFY_POOL_FULL, an error: serve would refuse the group).
 * - A subscription for a mailbox that no watch group watches: it is accepted (a group may be added
 *   later), but it gets no event until then (MB_NOTIFY_MAILBOX_NOT_WATCHED, a warning).
 *
 * Mailboxes an EWS group leaves out because of its `servers` scope are known only once autodiscover
 * has named their server; the EWS watcher reports them at start (MB_EWS_MAILBOX_NOT_ON_SERVERS).
 */
import { makeProblem, type ConfigProblem, type Locate } from '../config/problems.ts';
import type { NotifyRepository } from '../store/notify.ts';
import type { NotifyConfig } from './config.ts';
import type { WatchConfig } from './watchers/config.ts';
import { normalizeMailboxes } from './watchers/pools.ts';

function groupMailboxes(g: WatchConfig['groups'][string]): string[] {
  return normalizeMailboxes(g.mailboxes.map((m) => ({ address: typeof m === 'string' ? m : m.address, folders: [] }))).map((m) => m.address);
}

/** Lower-case addresses of every mailbox some watch group watches. */
export function watchedMailboxes(watch: WatchConfig | undefined): Set<string> {
  const out = new Set<string>();
  for (const g of Object.values(watch?.groups ?? {})) for (const a of groupMailboxes(g)) out.add(a);
  return out;
}

/** The mailboxes of a subscription that no watch group watches (lower-case, in the given order). */
export function unwatched(mailboxes: readonly string[], watched: ReadonlySet<string>): string[] {
  return mailboxes.map((m) => m.toLowerCase()).filter((m) => !watched.has(m));
}

/** Problems of a validated configuration's notify section, for `config check` (errors and warnings). */
export function notifyConfigProblems(config: { notify?: NotifyConfig | undefined }, locate: Locate): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const [group, g] of Object.entries(config.notify?.watch?.groups ?? {})) {
    const mailboxes = groupMailboxes(g).length;
    const capacity = g.listeners.reduce((n, l) => n + l.capacity, 0);
    if (mailboxes > capacity) {
      const at = ['notify', 'watch', 'groups', group, 'listeners'];
      out.push(makeProblem('error', 'MB_NOTIFY_POOL_FULL', at.join('.'), { group, mailboxes, capacity, listeners: g.listeners.length, missing: mailboxes - capacity }, locate(at)));
    }
  }
  return out;
}

/** Active subscriptions with mailboxes no watch group watches (for `mailbridge watch`). */
export async function subscriptionsNotWatched(repo: NotifyRepository, watch: WatchConfig | undefined): Promise<Array<{ id: string; mailboxes: string[] }>> {
  const watched = watchedMailboxes(watch);
  const out: Array<{ id: string; mailboxes: string[] }> = [];
  for (const s of await repo.listSubscriptions({})) {
    if (s.state !== 'active') continue;
    const missing = unwatched(s.mailboxes, watched);
    if (missing.length) out.push({ id: s.id, mailboxes: missing });
  }
  return out;
}
