/**
 * The contract between the queue manager and whatever carries a message to Microsoft 365 (SMTP
 * XOAUTH2, Graph sendMail, a test double). A transport delivers one message per call and classifies
 * the outcome; it never changes queue state itself — the queue decides what a result means.
 *
 * Results:
 * - `{ ok: true }` — upstream accepted the message (SMTP 250 to DATA, Graph 202).
 * - `{ temporary: true, … }` — try again later (4xx, timeouts, 429). `retryAfter` (seconds, as in
 *   HTTP Retry-After) lengthens the wait for this message and pauses its mailbox for that long.
 * - `{ permanent: true, … }` — will not work by waiting (5xx); the message bounces with a report
 *   that carries `mbCode`'s cause and fix.
 * A transport that throws is treated as a temporary failure (MB_RELAY_TRANSPORT_FAILED).
 */
import type { Readable } from 'node:stream';
import type { ErrorParams, MbCode } from '../errors/index.ts';

export interface OutboundMessage {
  /** Queue ID (also the spool file name); stable across attempts, so transports can log it. */
  readonly id: string;
  /** Envelope sender (MAIL FROM); '' for bounce reports (null sender). */
  readonly sender: string;
  /** Every envelope recipient, BCC recipients included: deliver to exactly these. */
  readonly recipients: readonly string[];
  /** The mailbox that sends this message upstream (SASL user / Graph /users/{mailbox}). */
  readonly mailbox: string;
  readonly relayUser?: string;
  readonly clientIp?: string;
  /** Size in bytes of the stored message (what `body()` yields). */
  readonly size: number;
  readonly bodyType: '7bit' | '8bitmime';
  /** The client asked for SMTPUTF8 (UTF-8 addresses or headers). */
  readonly smtpUtf8: boolean;
  readonly receivedAt: Date;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** True for bounce reports mailbridge wrote (null sender; never bounced again). */
  readonly isBounce: boolean;
  /** The message exactly as received (CRLF line ends, no dot-stuffing). */
  body(): Readable;
  readBody(): Promise<Buffer>;
  /** Aborted when the attempt times out or the relay shuts down: stop and return. */
  readonly signal: AbortSignal;
}

export interface SendFailure {
  /** Upstream reply as received, e.g. `432 4.3.2 concurrent connection limit exceeded` or `HTTP 429`. */
  code?: string;
  /** What an admin reads: catalogue code with cause and fix. */
  mbCode: MbCode;
  params?: ErrorParams;
  /** Free text for logs and the bounce report (scrubbed before it is stored). */
  detail: string;
}

export type SendResult =
  | { ok: true; /** Upstream's acceptance line, for the log. */ detail?: string }
  | ({ temporary: true; /** Seconds. */ retryAfter?: number } & SendFailure)
  | ({ permanent: true } & SendFailure);

export interface Transport {
  /** For logs and MB_RELAY_TRANSPORT_* texts, e.g. `smtp-xoauth2` or `graph`. */
  readonly name: string;
  send(message: OutboundMessage): Promise<SendResult>;
  close?(): Promise<void>;
}
