/** Shared fixtures for the notify tests: a store in a temporary directory and a settable clock. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.ts';
import type { NotifySubscriptionRecord } from '../../src/store/notify.ts';
import { retrySchema, type RetryConfig } from '../../src/notify/config.ts';
import { newMessage } from '../../src/notify/events.ts';

export interface TempStore {
  store: Store;
  path: string;
  reopen(): Promise<Store>;
  cleanup(): Promise<void>;
}

export async function tempStore(): Promise<TempStore> {
  const dir = mkdtempSync(join(tmpdir(), 'mb-notify-'));
  const path = join(dir, 'mb.db');
  const t: TempStore = {
    store: await openStore({ driver: 'sqlite', path }),
    path,
    async reopen() {
      await t.store.close();
      t.store = await openStore({ driver: 'sqlite', path });
      return t.store;
    },
    async cleanup() {
      await t.store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

export class Clock {
  t: number;
  constructor(start = Date.parse('2026-03-02T08:00:00Z')) {
    this.t = start;
  }
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export const noJitter: RetryConfig = retrySchema.parse({ jitter: 0 });

let n = 0;
export function subscription(kind: string, mailboxes: string[], params: Record<string, unknown> = {}, extra: Partial<NotifySubscriptionRecord> = {}): NotifySubscriptionRecord {
  n++;
  return {
    id: `sub_test${n}`,
    kind,
    mailboxes,
    events: [],
    params,
    privacy: 'full',
    state: 'active',
    createdAt: 1_000 + n,
    updatedAt: 1_000 + n,
    ...extra,
  };
}

export function mail(mailbox: string, messageId: string, subject = `Subject ${messageId}`) {
  return newMessage({
    type: 'message.new',
    mailbox,
    messageId,
    folder: 'Inbox',
    sender: { address: 'anna@fabrikam.com', name: 'Anna Schmidt' },
    subject,
    receivedAt: '2026-03-02T07:59:58Z',
  });
}
