/**
 * Requests to deliver again the messages a destination refused for good (the quarantine), made
 * where the connector does not run: the admin API's POST /api/v1/connectors/{name}/retry-rejected,
 * while `mailbridge fetch` runs the connector in another process (or from cron, later). What
 * `fetch --retry-rejected` does for one run, a request does once for every mailbox folder: the
 * runner looks before each folder pass, retries the refused messages, and notes the request as
 * honoured for that folder.
 *
 * Kept in the store's key-value table (namespace connector.retry-rejected): per connector the time
 * of the latest request, per connector + mailbox + folder the request last honoured. A folder whose
 * pass fails keeps the request and tries again at its next pass.
 */
import type { KeyValue } from '../store/index.ts';
import type { CheckpointScope } from '../store/checkpoints.ts';

export const RETRY_NAMESPACE = 'connector.retry-rejected';

const folderKey = (s: CheckpointScope) => `${s.connector}\u0000${s.mailbox.toLowerCase()}\u0000${s.folder}`;

export class RetryRequests {
  private readonly kv: KeyValue;

  constructor(kv: KeyValue) {
    this.kv = kv;
  }

  /** Asks every folder of the connector to retry its refused messages at its next pass; the request's time. */
  async request(connector: string, at: Date = new Date()): Promise<string> {
    const iso = at.toISOString();
    await this.kv.set(RETRY_NAMESPACE, connector, iso);
    return iso;
  }

  /** The request this folder has not honoured yet, if any. */
  async pending(scope: CheckpointScope): Promise<string | undefined> {
    const asked = await this.kv.get(RETRY_NAMESPACE, scope.connector);
    if (asked === undefined) return undefined;
    const done = await this.kv.get(RETRY_NAMESPACE, folderKey(scope));
    return done === undefined || done < asked ? asked : undefined;
  }

  async honoured(scope: CheckpointScope, asked: string): Promise<void> {
    await this.kv.set(RETRY_NAMESPACE, folderKey(scope), asked);
  }
}
