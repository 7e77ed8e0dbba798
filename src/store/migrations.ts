/**
 * The store's tables, written once for both drivers: migrations by name, applied once each in list
 * order (sqlite.ts and postgres.ts run them). Each area appends its own entries (named
 * `<area>-<n>`), so work on different areas never competes for the same number.
 *
 * Only a few spellings differ between the dialects (`Ddl`): SQLite tables are STRICT and its
 * INTEGER is 64 bits; PostgreSQL needs BIGINT for epoch milliseconds and counters, and COLLATE "C"
 * wherever rows are ordered or compared by a text column, so ids, items and ISO timestamps sort
 * byte for byte as in SQLite whatever the database's locale. The relay queue keeps its JSON and
 * flags as JSONB and BOOLEAN on PostgreSQL; the notify tables keep JSON as text in both, so what a
 * caller stores is what it reads back byte for byte. What only one dialect has (the events' cursor
 * column, where SQLite uses its rowid) is spelled out at its place.
 */
export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  id: string;
  sql: string;
}

interface Ddl {
  /** Epoch milliseconds, sizes, sequence numbers. */
  int64: string;
  bool: string;
  /** JSON the database may look into (the queue's recipients and last error). */
  json: string;
  /** A text column that is ordered or compared: byte-wise in both. */
  sorted: string;
  /** What closes a CREATE TABLE. */
  end: string;
}

const DDL: Record<Dialect, Ddl> = {
  sqlite: { int64: 'INTEGER', bool: 'INTEGER', json: 'TEXT', sorted: 'TEXT', end: ') STRICT' },
  postgres: { int64: 'BIGINT', bool: 'BOOLEAN', json: 'JSONB', sorted: 'TEXT COLLATE "C"', end: ')' },
};

export function migrations(dialect: Dialect): Migration[] {
  const t = DDL[dialect];
  const pg = dialect === 'postgres';
  // A message of a connector's folder: the columns its outcome and its in-flight note are keyed by.
  const connectorItem = `connector TEXT NOT NULL,
         mailbox TEXT NOT NULL,
         folder TEXT NOT NULL,
         epoch TEXT NOT NULL,
         item ${t.sorted} NOT NULL,
         key TEXT NOT NULL`;
  return [
    {
      id: 'core-1',
      sql: `CREATE TABLE kv (
         namespace TEXT NOT NULL,
         key TEXT NOT NULL,
         value TEXT NOT NULL,
         updated_at TEXT NOT NULL,
         PRIMARY KEY (namespace, key)
       ${t.end}`,
    },
    {
      id: 'relay-1',
      sql: `CREATE TABLE relay_queue (
         id ${t.sorted} PRIMARY KEY,
         state TEXT NOT NULL CHECK (state IN ('incoming', 'active', 'deferred', 'held', 'sent', 'bounced')),
         kind TEXT NOT NULL CHECK (kind IN ('message', 'dsn')),
         sender TEXT NOT NULL,
         recipients ${t.json} NOT NULL,
         mailbox TEXT NOT NULL,
         relay_user TEXT,
         client_ip TEXT,
         size ${t.int64} NOT NULL,
         body_type TEXT NOT NULL,
         smtputf8 ${t.bool} NOT NULL,
         received_at ${t.int64} NOT NULL,
         attempts INTEGER NOT NULL,
         next_attempt_at ${t.int64} NOT NULL,
         last_attempt_at ${t.int64},
         last_error ${t.json},
         hold_reason TEXT,
         origin_id TEXT,
         updated_at ${t.int64} NOT NULL
       ${t.end};
       CREATE INDEX relay_queue_ready ON relay_queue (state, next_attempt_at);
       CREATE INDEX relay_queue_mailbox ON relay_queue (mailbox, state);`,
    },
    { id: 'relay-2', sql: `ALTER TABLE relay_queue ADD COLUMN retry_requested_at ${t.int64}` },
    {
      // The manager asks "what is due next" after every delivery. Without this index each question
      // sorted every waiting message (quadratic under a backlog); with it the answer is the first
      // entries of the index. The SQLite queries name it (INDEXED BY): without statistics SQLite
      // prefers relay_queue_ready and sorts; they must spell the same WHERE to be allowed to use it.
      id: 'relay-3',
      sql: `CREATE INDEX relay_queue_due ON relay_queue (next_attempt_at, id) WHERE state IN ('incoming', 'deferred')`,
    },
    {
      // Timestamps are ISO strings in both dialects.
      id: 'connector-1',
      sql: `CREATE TABLE connector_checkpoint (
         connector TEXT NOT NULL,
         mailbox TEXT NOT NULL,
         folder TEXT NOT NULL,
         epoch TEXT NOT NULL,
         position ${t.int64} NOT NULL DEFAULT 0,
         cursor TEXT,
         dedupe_below ${t.int64} NOT NULL DEFAULT 0,
         updated_at TEXT NOT NULL,
         PRIMARY KEY (connector, mailbox, folder)
       ${t.end};
       CREATE TABLE connector_message (
         ${connectorItem},
         state TEXT NOT NULL CHECK (state IN ('delivered', 'done', 'rejected')),
         code TEXT,
         size ${t.int64} NOT NULL,
         at ${t.sorted} NOT NULL,
         PRIMARY KEY (connector, mailbox, folder, epoch, item)
       ${t.end};
       CREATE INDEX connector_message_key ON connector_message (connector, mailbox, folder, key);
       CREATE INDEX connector_message_state ON connector_message (connector, mailbox, folder, epoch, state);
       CREATE TABLE connector_inflight (
         ${connectorItem},
         delivery_id TEXT NOT NULL,
         started_at ${t.sorted} NOT NULL,
         PRIMARY KEY (connector, mailbox, folder, epoch, item)
       ${t.end};
       CREATE TABLE connector_lease (
         name TEXT PRIMARY KEY,
         owner TEXT NOT NULL,
         expires_at ${t.int64} NOT NULL
       ${t.end}`,
    },
    {
      // SQLite numbers the events by rowid (the `watch` cursor); across nodes a sequence does.
      id: 'notify-1',
      sql: `CREATE TABLE notify_subscriptions (
         id ${t.sorted} PRIMARY KEY,
         kind TEXT NOT NULL,
         events TEXT NOT NULL,
         params TEXT NOT NULL,
         privacy TEXT NOT NULL CHECK (privacy IN ('full', 'minimal')),
         label TEXT,
         state TEXT NOT NULL CHECK (state IN ('active', 'gone')),
         gone_reason TEXT,
         created_at ${t.int64} NOT NULL,
         updated_at ${t.int64} NOT NULL
       ${t.end};
       CREATE TABLE notify_subscription_mailboxes (
         subscription_id TEXT NOT NULL REFERENCES notify_subscriptions (id) ON DELETE CASCADE,
         mailbox ${t.sorted} NOT NULL,
         PRIMARY KEY (mailbox, subscription_id)
       ${t.end};
       ${pg ? 'CREATE INDEX notify_subscription_mailboxes_sub ON notify_subscription_mailboxes (subscription_id);' : ''}
       CREATE TABLE notify_mailboxes (
         mailbox TEXT PRIMARY KEY,
         last_seq ${t.int64} NOT NULL
       ${t.end};
       CREATE TABLE notify_events (
         ${pg ? 'cursor BIGSERIAL UNIQUE,' : ''}
         id TEXT PRIMARY KEY,
         mailbox ${t.sorted} NOT NULL,
         seq ${t.int64} NOT NULL,
         type TEXT NOT NULL,
         body TEXT NOT NULL,
         created_at ${t.int64} NOT NULL,
         UNIQUE (mailbox, seq)
       ${t.end};
       CREATE INDEX notify_events_created ON notify_events (created_at);
       CREATE TABLE notify_deliveries (
         subscription_id ${t.sorted} NOT NULL REFERENCES notify_subscriptions (id) ON DELETE CASCADE,
         event_id TEXT NOT NULL REFERENCES notify_events (id),
         mailbox ${t.sorted} NOT NULL,
         seq ${t.int64} NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'expired', 'dropped')),
         attempts INTEGER NOT NULL,
         created_at ${t.int64} NOT NULL,
         next_attempt_at ${t.int64} NOT NULL,
         last_attempt_at ${t.int64},
         last_error TEXT,
         updated_at ${t.int64} NOT NULL,
         PRIMARY KEY (subscription_id, event_id)
       ${t.end};
       CREATE INDEX notify_deliveries_line ON notify_deliveries (subscription_id, mailbox, state, seq);
       CREATE INDEX notify_deliveries_due ON notify_deliveries (state, next_attempt_at);
       CREATE INDEX notify_deliveries_event ON notify_deliveries (event_id);`,
    },
    {
      // Several relay nodes on one database (PostgreSQL). A claim names its node, a token that
      // fences the result (a node whose claim was taken over cannot record it) and a lease the node
      // renews while it delivers; once the lease has run out another node takes the message over.
      // Bodies live next to their rows so that any node can deliver any message; relay_starts
      // counts each mailbox's delivery starts for the limits that hold across nodes (30 a minute,
      // recipients a day). SQLite installs keep bodies in the spool folder and limits in memory;
      // the tables exist there too, so both dialects keep one list of migrations. The indexes for
      // finding expired leases and a mailbox's running deliveries are PostgreSQL's only: on SQLite
      // nothing asks those questions, and every claim and delivery would pay for keeping them.
      id: 'relay_cluster',
      sql: `ALTER TABLE relay_queue ADD COLUMN claimed_by TEXT;
       ALTER TABLE relay_queue ADD COLUMN claim_token TEXT;
       ALTER TABLE relay_queue ADD COLUMN lease_until ${t.int64};
       ${pg ? "CREATE INDEX relay_queue_lease ON relay_queue (lease_until) WHERE state = 'active';" : ''}
       ${pg ? "CREATE INDEX relay_queue_active ON relay_queue (mailbox) WHERE state = 'active';" : ''}
       CREATE TABLE relay_bodies (
         id ${t.sorted} PRIMARY KEY,
         body ${pg ? 'BYTEA' : 'BLOB'} NOT NULL
       ${t.end};
       CREATE TABLE relay_starts (
         mailbox TEXT NOT NULL,
         at ${t.int64} NOT NULL,
         recipients INTEGER NOT NULL
       ${t.end};
       CREATE INDEX relay_starts_mailbox ON relay_starts (mailbox, at);`,
    },
    {
      // Several nodes (src/store/cluster.ts): the registry with heartbeats, and leases whose epoch is
      // the fencing token. `owns` is JSON text (counts per kind of lease).
      id: 'cluster_1',
      sql: `CREATE TABLE cluster_nodes (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         version TEXT NOT NULL,
         role TEXT NOT NULL,
         started_at ${t.int64} NOT NULL,
         heartbeat_at ${t.int64} NOT NULL,
         owns TEXT NOT NULL
       ${t.end};
       CREATE TABLE cluster_leases (
         name ${t.sorted} PRIMARY KEY,
         owner TEXT NOT NULL,
         epoch ${t.int64} NOT NULL,
         expires_at ${t.int64} NOT NULL
       ${t.end}`,
    },
    {
      // Notification deliveries claimed across nodes (notify-postgres.ts `due`): the node that
      // claimed a line's head and until when; another node may take it over after that.
      id: 'cluster_2',
      sql: `ALTER TABLE notify_deliveries ADD COLUMN claimed_by TEXT;
       ALTER TABLE notify_deliveries ADD COLUMN claimed_until ${t.int64}`,
    },
    {
      // Parcels (src/store/signals.ts): hand-overs between nodes too large or too precious for a
      // NOTIFY, read per key in the order posted.
      id: 'signals-1',
      sql: `CREATE TABLE signal_parcels (
         id ${pg ? 'BIGSERIAL' : 'INTEGER'} PRIMARY KEY,
         channel TEXT NOT NULL,
         key ${t.sorted} NOT NULL,
         payload TEXT NOT NULL,
         posted_at ${t.int64} NOT NULL
       ${t.end};
       CREATE INDEX signal_parcels_key ON signal_parcels (channel, key, id);`,
    },
  ];
}
