/**
 * The old credentials `mailbridge credential rotate` left in place for their overlap, and when each
 * may go. Apart from rotate.ts, which removes them through Graph: the gateway looks here daily, and
 * only when one is due does it load the Graph client and the rest of rotation.
 */
import type { KeyValue } from '../store/index.ts';

export const RETIRE_NAMESPACE = 'credential-retire';

export interface RetireEntry {
  kind: 'certificate' | 'secret';
  keyId: string;
  appObjectId: string;
  after: number;
}

export async function readRetire(kv: KeyValue, connection: string): Promise<RetireEntry[]> {
  const raw = await kv.get(RETIRE_NAMESPACE, connection);
  return raw ? (JSON.parse(raw) as RetireEntry[]) : [];
}

/** Whether any old credential's overlap is over at `now`. */
export async function retireIsDue(kv: KeyValue, now: number): Promise<boolean> {
  for (const { key } of await kv.list(RETIRE_NAMESPACE)) if ((await readRetire(kv, key)).some((e) => e.after <= now)) return true;
  return false;
}
