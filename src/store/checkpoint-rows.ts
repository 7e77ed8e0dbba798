/**
 * Rows of the connector tables as both drivers read them back (checkpoints-sqlite.ts,
 * checkpoints-postgres.ts store the same columns), and their records.
 */
import type { Checkpoint, CheckpointScope, InFlightEntry, MessageRecord, MessageState } from './checkpoints.ts';

export type Row = Record<string, string | number | null>;

export const toMessageRecord = (r: Row): MessageRecord => ({
  epoch: String(r.epoch),
  item: String(r.item),
  key: String(r.key),
  state: r.state as MessageState,
  code: r.code === null ? undefined : String(r.code),
  size: Number(r.size),
  at: String(r.at),
});

/** A row of the per-connector listing (checkpoint plus counts). */
export const toScopeSummary = (connector: string, r: Row): CheckpointScope & Checkpoint & { delivered: number; rejected: number; inFlight: number } => ({
  connector,
  mailbox: String(r.mailbox),
  folder: String(r.folder),
  epoch: String(r.epoch),
  position: Number(r.position),
  ...(r.cursor === null ? {} : { cursor: String(r.cursor) }),
  dedupeBelow: Number(r.dedupe_below),
  updatedAt: String(r.updated_at),
  delivered: Number(r.delivered),
  rejected: Number(r.rejected),
  inFlight: Number(r.inflight),
});

export const toInFlight = (r: Row): InFlightEntry => ({
  epoch: String(r.epoch),
  item: String(r.item),
  key: String(r.key),
  deliveryId: String(r.delivery_id),
  startedAt: String(r.started_at),
});
