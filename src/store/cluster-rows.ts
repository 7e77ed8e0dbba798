/** Rows of the cluster tables as records, for both drivers. */
import type { LeaseRecord, NodeRecord } from './cluster.ts';

export type Row = Record<string, unknown>;

export const toNode = (r: Row): NodeRecord => ({
  id: String(r.id),
  name: String(r.name),
  version: String(r.version),
  role: String(r.role),
  startedAt: Number(r.started_at),
  heartbeatAt: Number(r.heartbeat_at),
  owns: JSON.parse(String(r.owns)) as Record<string, number>,
});

export const toLease = (r: Row): LeaseRecord => ({ name: String(r.name), owner: String(r.owner), epoch: Number(r.epoch), expiresAt: Number(r.expires_at) });
