/**
 * Bounce reports (RFC 3464 delivery status notifications): multipart/report with a part for people
 * (English, then German: what failed, the MB code, cause and fix, the server's reply), a
 * machine-readable message/delivery-status part (per-recipient Status and Diagnostic-Code, plus
 * X-Mailbridge-Code), and the original message's header block. Built with nodemailer's MimeNode.
 *
 * With SMTPUTF8 addresses or 8-bit headers the machine parts use RFC 6533's global types, because
 * message/delivery-status and text/rfc822-headers must stay 7-bit.
 */
import MimeNode from 'nodemailer/lib/mime-node';
import { explain, renderText, type ErrorParams } from '../../errors/index.ts';
import type { Lang } from '../../i18n/index.ts';
import { isAscii } from '../policy.ts';

export interface DsnFailure {
  /** MB code of the final failure. */
  code: string;
  params?: ErrorParams;
  /** Upstream reply, e.g. `554 5.2.252 SendAsDenied; …`. */
  reply?: string;
  /** True when the message was given up after temporary failures (retry schedule used up). */
  expired?: boolean;
}

export interface DsnInput {
  reportingMta: string;
  /** From of the report (a mailbox that may send). */
  from: string;
  /** Who receives the report (header To). */
  to: string[];
  queueId: string;
  originalSender: string;
  failedRecipients: string[];
  arrival: Date;
  lastAttempt: Date;
  attempts: number;
  failure: DsnFailure;
  /** Header block of the original message (up to the empty line). */
  originalHeaders: Buffer;
}

/**
 * RFC 3463 status of failures mailbridge decides itself, without an SMTP reply to quote (before
 * sending, or from an HTTP answer of Graph).
 */
const LOCAL_STATUS: Partial<Record<string, string>> = {
  // Message too big for system.
  MB_RELAY_GRAPH_TOO_LARGE: '5.3.4',
  MB_RELAY_MESSAGE_TOO_LARGE: '5.3.4',
  // Delivery not authorized, message refused.
  MB_RELAY_ROUTE_SENDER_DENIED: '5.7.1',
};

/**
 * RFC 3463 status for the report: 5.4.7 for an expired message, the reply's own 5.x.y, the status
 * of a failure mailbridge decided itself (LOCAL_STATUS), else 5.0.0.
 */
export function dsnStatus(failure: DsnFailure): string {
  if (failure.expired) return '5.4.7';
  const m = /\b5\.(\d{1,3})\.(\d{1,3})\b/.exec(failure.reply ?? '');
  return m ? `5.${m[1]}.${m[2]}` : (LOCAL_STATUS[failure.code] ?? '5.0.0');
}

/**
 * RFC 3464 Diagnostic-Code: an SMTP reply as the server gave it (type smtp); anything else — an
 * HTTP answer of Graph, or a failure mailbridge decided itself — as x-mailbridge, naming the MB
 * code so the line alone says where to look.
 */
export function dsnDiagnostic(failure: DsnFailure): string {
  const reply = failure.reply?.replace(/[\r\n]+/g, ' ').trim();
  if (reply && /^\d{3}[ -]/.test(reply)) return `smtp; ${reply}`;
  const title = explain(failure.code, failure.params ?? {}, 'en').title;
  // The delivery-status part is 7-bit: a Graph error text may not be.
  return `x-mailbridge; ${failure.code} (${title})${reply ? `: ${reply}` : ''}`.replace(/[^\x20-\x7e]/g, '?');
}

export async function buildDsn(input: DsnInput): Promise<Buffer> {
  const utf8 = [...input.failedRecipients, input.originalSender].some((a) => !isAscii(a));
  const headers8bit = input.originalHeaders.some((b) => b >= 0x80);

  const root = new MimeNode('multipart/report; report-type=delivery-status', { hostname: input.reportingMta, newline: 'windows' });
  root.setHeader({
    From: { name: 'Mail Delivery System', address: input.from },
    To: input.to,
    Subject: 'Undelivered Mail Returned to Sender / Unzustellbare Nachricht',
    Date: input.lastAttempt,
    'Auto-Submitted': 'auto-replied',
  });
  const original = originalMessageId(input.originalHeaders);
  if (original) {
    root.setHeader('In-Reply-To', original);
    root.setHeader('References', original);
  }

  root.createChild('text/plain; charset=utf-8').setContent(humanText(input, 'en') + '\n\n---- Deutsch ----\n\n' + humanText(input, 'de'));

  const status = root.createChild(utf8 ? 'message/global-delivery-status' : 'message/delivery-status');
  status.setHeader('Content-Transfer-Encoding', utf8 ? '8bit' : '7bit');
  status.setContent(deliveryStatus(input, utf8));

  const head = root.createChild(headers8bit ? 'message/global-headers' : 'text/rfc822-headers');
  head.setHeader('Content-Transfer-Encoding', headers8bit ? '8bit' : '7bit');
  // A string lets MimeNode keep pure-ASCII headers readable (7bit); 8-bit ones stay raw bytes.
  head.setContent(headers8bit ? input.originalHeaders : input.originalHeaders.toString('latin1'));

  return root.build();
}

function humanText(input: DsnInput, lang: Lang): string {
  const e = explain(input.failure.code, input.failure.params ?? {}, lang);
  const de = lang === 'de';
  const lines = [
    de
      ? `Dies ist mailbridge auf ${input.reportingMta}. Ihre Nachricht konnte nicht zugestellt werden und wurde nicht gesendet.`
      : `This is mailbridge at ${input.reportingMta}. Your message could not be delivered and was not sent.`,
    de
      ? 'Erneutes Senden hilft erst, wenn die unten genannte Ursache behoben ist.'
      : 'Sending it again helps only once the cause below is fixed.',
    '',
    `  ${de ? 'Warteschlangen-ID' : 'Queue ID'}: ${input.queueId}`,
    `  ${de ? 'Angenommen' : 'Received'}: ${input.arrival.toISOString()}`,
    `  ${de ? 'Absender' : 'Sender'}: ${input.originalSender || '<>'}`,
    `  ${de ? 'Empfänger' : 'Recipients'}: ${input.failedRecipients.join(', ')}`,
    `  ${de ? 'Versuche' : 'Attempts'}: ${input.attempts}`,
    '',
    renderText(e, lang),
  ];
  if (input.failure.reply) lines.push(`  ${de ? 'Antwort des Servers' : 'Server reply'}: ${input.failure.reply}`);
  return lines.join('\n');
}

function deliveryStatus(input: DsnInput, utf8: boolean): string {
  const addrType = utf8 ? 'utf-8' : 'rfc822';
  const status = dsnStatus(input.failure);
  const diag = `Diagnostic-Code: ${dsnDiagnostic(input.failure)}`;
  const blocks = [
    [`Reporting-MTA: dns; ${input.reportingMta}`, `X-Mailbridge-Queue-ID: ${input.queueId}`, `Arrival-Date: ${rfc5322Date(input.arrival)}`].join('\r\n'),
    ...input.failedRecipients.map((r) =>
      [
        `Final-Recipient: ${addrType}; ${r}`,
        'Action: failed',
        `Status: ${status}`,
        diag,
        `X-Mailbridge-Code: ${input.failure.code}`,
        `Last-Attempt-Date: ${rfc5322Date(input.lastAttempt)}`,
      ].join('\r\n'),
    ),
  ];
  return blocks.join('\r\n\r\n') + '\r\n';
}

function originalMessageId(headers: Buffer): string | undefined {
  const unfolded = headers.toString('latin1').replace(/\r\n[ \t]+/g, ' ');
  return /^message-id:\s*(<[^>\s]+>)/im.exec(unfolded)?.[1];
}

function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}
