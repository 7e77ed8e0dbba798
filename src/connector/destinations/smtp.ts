/**
 * SMTP or LMTP destination (nodemailer): hands each message unchanged to a local mail server, as
 * the Securepoint UTM's connector delivers into its relay. A pool of connections (one per message in
 * flight) keeps the per-message cost to MAIL/RCPT/DATA.
 *
 * Envelope: recipients come from `map` (per source mailbox), else `to`, else `domain` (local part of
 * the source mailbox @ that domain), else the source mailbox itself. The sender is the message's
 * Return-Path (else From) unless `from` says "empty" (<>) or gives an address.
 *
 * Replies: 2xx = acknowledged; 4xx or a connection failure = temporary (the message stays in the
 * mailbox); 5xx = refused for good. With LMTP, a message accepted for some recipients and refused
 * for others counts as delivered (retrying would duplicate it for the accepted ones); the refusals are
 * logged. Idempotency: the Message-ID is passed through unchanged; `deliveryIdHeader` adds an
 * `X-Mailbridge-Delivery-Id` header for receivers that deduplicate by it (the message is then no
 * longer byte for byte), e.g. Dovecot with share/sieve/mailbridge-dedupe.sieve.
 *
 * With `deliveryIdHeader`, messages for the same recipients are handed over one at a time (other
 * recipients in parallel): Dovecot 2.3's duplicate database, which Pigeonhole's `duplicate` test
 * uses, loses IDs recorded by concurrent deliveries to the same user (each transaction rewrites the
 * file from what it read at its start; measured 48 of 60 lost with 4 at once, 0 of 60 one at a
 * time), and a lost ID is a duplicate after the next crash.
 */
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import { registerSecret } from '../../log/redact.ts';
import { KeyedLimits } from '../../util/limits.ts';
import { addressOf, headerValue } from '../message.ts';
import type { DestinationConfig } from '../config.ts';
import { ConnectorError, type Delivery, type Destination, type DestinationPlugin } from '../types.ts';

export interface SmtpDestinationOptions {
  connector: string;
  protocol: 'smtp' | 'lmtp';
  host: string;
  port: number;
  /** implicit TLS from the start; starttls: required; none: never; auto: if offered. */
  tls: 'implicit' | 'starttls' | 'none' | 'auto';
  caFile?: string;
  auth?: { user: string; pass: string };
  recipients: { to?: string[]; map?: Record<string, string[]>; domain?: string };
  from: string;
  /** LHLO/EHLO name. */
  name?: string;
  maxConnections: number;
  timeoutMs: number;
  deliveryIdHeader?: boolean;
  log?: Logger;
}

const NETWORK = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'EPROXY', 'ECONNREFUSED', 'ECONNRESET']);
const BEFORE_DATA = new Set(['CONN', 'GREETING', 'EHLO', 'HELO', 'LHLO', 'STARTTLS', 'AUTH', 'AUTH PLAIN', 'AUTH LOGIN', 'MAIL FROM', 'RCPT TO']);

export function smtpDestination(o: SmtpDestinationOptions): Destination {
  const description = `${o.protocol} ${o.host}:${o.port}`;
  const log = o.log ?? silentLogger;
  if (o.auth) registerSecret(o.auth.pass);
  const transport = nodemailer.createTransport({
    host: o.host,
    port: o.port,
    lmtp: o.protocol === 'lmtp',
    secure: o.tls === 'implicit',
    requireTLS: o.tls === 'starttls',
    ignoreTLS: o.tls === 'none',
    tls: o.caFile ? { ca: readFileSync(o.caFile, 'utf8') } : undefined,
    auth: o.auth,
    name: o.name,
    pool: true,
    maxConnections: o.maxConnections,
    maxMessages: Infinity,
    connectionTimeout: o.timeoutMs,
    greetingTimeout: o.timeoutMs,
    socketTimeout: o.timeoutMs,
    logger: false,
  });
  // A pooled transport reports connection trouble as events too; the send call gets the error.
  transport.on('error', () => undefined);
  const perRecipients = o.deliveryIdHeader ? new KeyedLimits(1) : undefined;

  return {
    description,
    idempotent: false,
    dedupeBy: o.deliveryIdHeader ? 'X-Mailbridge-Delivery-Id' : 'Message-ID',
    async deliver(d: Delivery) {
      const to = recipientsFor(o.recipients, d.mailbox);
      const from = envelopeFrom(o.from, d.raw);
      const raw = o.deliveryIdHeader ? withHeader(d.raw, 'X-Mailbridge-Delivery-Id', d.deliveryId) : d.raw;
      let info: { accepted?: unknown[]; rejected?: unknown[]; rejectedErrors?: Array<{ recipient?: string; response?: string }> };
      try {
        const send = () => transport.sendMail({ envelope: { from, to }, raw });
        info = perRecipients ? await perRecipients.with(to.map((r) => r.toLowerCase()).sort().join(','), send) : await send();
      } catch (err) {
        throw classifySmtpError(err, { ...o, description, item: d.item, mailbox: d.mailbox, folder: d.folder });
      }
      const refused = (info.rejected ?? []).map(String);
      if ((info.accepted ?? []).length === 0) {
        // LMTP answers per recipient after DATA; refused by all is refused (temporary if any reply was 4xx).
        const replies = info.rejectedErrors ?? [];
        const pick = replies.find((e) => (e as { responseCode?: number }).responseCode! < 500) ?? replies[0] ?? { response: 'no recipient accepted' };
        throw classifySmtpError(pick, { ...o, description, item: d.item, mailbox: d.mailbox, folder: d.folder });
      }
      if (refused.length > 0) {
        log.warn({ item: d.item, mailbox: d.mailbox, refused, replies: (info.rejectedErrors ?? []).map((e) => e.response) }, `${description} refused some recipients`);
      }
    },
    async close() {
      transport.close();
    },
  };
}

/** The `smtp` and `lmtp` destinations as configured. */
export const smtpDestinationPlugin: DestinationPlugin<Extract<DestinationConfig, { kind: 'smtp' | 'lmtp' }>> = (c, ctx) =>
  smtpDestination({
    connector: ctx.connector,
    protocol: c.kind,
    host: c.host,
    port: c.port,
    tls: c.tls,
    caFile: c.caFile,
    auth: c.auth ? { user: c.auth.user, pass: (ctx.reveal ?? ((s: string) => s))(c.auth.pass, 'destination.auth.pass') } : undefined,
    recipients: c.recipients,
    from: c.from,
    name: c.name,
    maxConnections: ctx.window,
    timeoutMs: c.timeoutSeconds * 1000,
    deliveryIdHeader: c.deliveryIdHeader,
    log: ctx.log,
  });

export function recipientsFor(r: SmtpDestinationOptions['recipients'], mailbox: string): string[] {
  const mapped = r.map && Object.entries(r.map).find(([k]) => k.toLowerCase() === mailbox.toLowerCase())?.[1];
  if (mapped && mapped.length > 0) return mapped;
  if (r.to && r.to.length > 0) return r.to;
  if (r.domain) return [`${mailbox.split('@')[0]}@${r.domain}`];
  return [mailbox];
}

/** "return-path" (default): the message's Return-Path, else its From; "empty": <>; else the address given. */
export function envelopeFrom(setting: string, raw: Buffer): string {
  if (setting === 'empty') return '';
  if (setting !== 'return-path') return setting;
  const rp = headerValue(raw, 'return-path');
  if (rp !== undefined) return addressOf(rp) ?? '';
  return addressOf(headerValue(raw, 'from')) ?? '';
}

function withHeader(raw: Buffer, name: string, value: string): Buffer {
  const eol = raw.indexOf('\r\n') >= 0 ? '\r\n' : '\n';
  return Buffer.concat([Buffer.from(`${name}: ${value}${eol}`, 'latin1'), raw]);
}

function classifySmtpError(
  err: unknown,
  ctx: SmtpDestinationOptions & { description: string; item: string; mailbox: string; folder: string },
): ConnectorError {
  const e = (err ?? {}) as { code?: string; responseCode?: number; response?: string; command?: string; message?: string };
  const detail = e.response ?? e.message ?? String(err);
  const params = { destination: ctx.description, detail, connector: ctx.connector, item: ctx.item, mailbox: ctx.mailbox, folder: ctx.folder };
  if (typeof e.responseCode === 'number' && e.responseCode >= 500 && e.code !== 'EAUTH' && e.code !== 'ETLS') {
    return new ConnectorError('MB_CONNECTOR_DEST_REJECTED', params, { cause: err, permanent: true });
  }
  if (typeof e.responseCode === 'number' && e.responseCode >= 400) {
    return new ConnectorError('MB_CONNECTOR_DEST_TEMPFAIL', params, { cause: err });
  }
  if (NETWORK.has(e.code ?? '')) {
    // A connection that broke after DATA began may have delivered the message.
    const uncertain = !BEFORE_DATA.has(e.command ?? 'CONN') && e.command !== undefined;
    return new ConnectorError(uncertain ? 'MB_CONNECTOR_DEST_TEMPFAIL' : 'MB_CONNECTOR_DEST_UNREACHABLE', params, { cause: err, uncertain });
  }
  // Authentication, TLS or protocol trouble with the local server: a configuration matter; keep the mail.
  return new ConnectorError('MB_CONNECTOR_DEST_TEMPFAIL', params, { cause: err, uncertain: e.command === 'DATA' });
}
