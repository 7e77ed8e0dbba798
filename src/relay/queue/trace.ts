/**
 * The message trace of the relay queue: what happened to one message after it was accepted — each
 * delivery attempt with the upstream reply (Exchange's SMTP answer or Graph's status), the MB code
 * of a failure and when the next attempt is due, the bounce and its report, the admin's actions.
 * The queue row keeps only the last error; this keeps all of them, in the store's key-value table
 * (namespace relay.trace, one entry per message), and goes when the row is purged or deleted.
 *
 * Written right after the state change it describes, by the one process that made it, without
 * waiting for the disk flush: a crash in between (or a power failure soon after) loses that line
 * of the trace, never the message or its state.
 */
import type { KeyValue } from '../../store/index.ts';

export const TRACE_NAMESPACE = 'relay.trace';

export type TraceStep =
  | { at: number; type: 'attempt'; attempt: number; outcome: 'delivered' | 'deferred' | 'bounced'; code?: string; reply?: string; detail?: string; nextAttemptAt?: number; report?: string }
  | { at: number; type: 'admin'; action: 'hold' | 'release' | 'retry' }
  | { at: number; type: 'corrupt'; code: string };

/** Entries beyond this are dropped from the front (a message retried for days stays readable). */
const MAX_STEPS = 200;

export class QueueTrace {
  private readonly kv: KeyValue;

  constructor(kv: KeyValue) {
    this.kv = kv;
  }

  async add(id: string, step: TraceStep): Promise<void> {
    const steps = await this.get(id);
    steps.push(step);
    // Relaxed: a trace line is not worth an fsync in every delivery (a power failure may lose the last ones).
    await this.kv.set(TRACE_NAMESPACE, id, JSON.stringify(steps.slice(-MAX_STEPS)), { relaxed: true });
  }

  async get(id: string): Promise<TraceStep[]> {
    const raw = await this.kv.get(TRACE_NAMESPACE, id);
    return raw ? (JSON.parse(raw) as TraceStep[]) : [];
  }

  async remove(id: string): Promise<void> {
    await this.kv.delete(TRACE_NAMESPACE, id);
  }
}
