/**
 * What the watch service says of itself: the status it keeps for the API and writes to the store
 * for `mailbridge watch` in another process. Apart from the service, so that the readers (the
 * status route, the CLI) load none of the watchers' code.
 */
import type { EwsPushHub } from './ews/handoff.ts';
import type { MailboxStatus } from './types.ts';

export interface WatchProblem {
  at: string;
  group: string;
  listener: string;
  mailbox?: string;
  code: string;
  message: string;
}

export interface GroupStatus {
  group: string;
  kind: string;
  listeners: number;
  mailboxes: number;
  /** Mailboxes per state (watching, catching-up, reconnecting, failed, …). */
  states: Record<string, number>;
  /** Per listener (pool member): its capacity and its mailboxes per state, how full it is and how they fare. */
  byListener?: Record<string, { capacity: number; states: Record<string, number> }>;
}

export interface WatchStatus {
  updatedAt: string;
  /** https URL Microsoft calls, when the inbound listener runs. */
  publicUrl?: string;
  groups: GroupStatus[];
  /** Mailboxes not in the `watching` state (at most 200), for the admin's attention. */
  attention: Array<MailboxStatus & { group: string }>;
  problems: WatchProblem[];
  stopped?: boolean;
  /** Several nodes: Graph notifications handed to the node holding their subscription, received from other nodes, and received for no shard held here. */
  handoff?: { forwarded: number; received: number; unclaimed: number };
  /** Several nodes with EWS push: pushes this node stored for the owner (for a mailbox watched elsewhere: forwarded), answered Unsubscribe or refused; parcels handled here. */
  ewsPush?: EwsPushHub['stats'];
}

export const STATUS_NAMESPACE = 'notify.watch';
export const STATUS_KEY = 'status';
