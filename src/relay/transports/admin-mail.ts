/**
 * Admin mails, as enaio's administrative mails do: a short message to an admin address when the
 * relay starts and when it stops (host, listeners, queue counts, what recovery found), and when a
 * credential nears its expiry (src/check/expiry.ts), in English and German. They go through the relay's own queue and routes like any message, so they are
 * durable and use the same mailbox and transport; a start mail written while Microsoft is
 * unreachable goes out when it is reachable again. Bounce reports to an admin are not repeated
 * here: relay.bounces.notify: admin|both sends the RFC 3464 report itself to bounces.adminAddress.
 *
 * Stop mails are queued and given a short grace (`stopWaitMs`) to be delivered before the relay
 * closes; one that does not make it stays queued and goes out at the next start.
 */
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { Queue } from '../queue/index.ts';
import type { AdminMailConfig } from '../config.ts';

export interface AdminMailFacts {
  hostname: string;
  version: string;
  listeners: string[];
  counts: Record<string, number>;
  /** Start: what recovery did (requeued, corrupt); stop: the reason (signal). */
  note?: string;
  uptimeSeconds?: number;
}

/** Builds and queues one admin mail; returns its queue ID. */
export async function queueAdminMail(queue: Queue, config: AdminMailConfig, event: 'start' | 'stop', facts: AdminMailFacts, now = new Date()): Promise<string> {
  const subject =
    event === 'start'
      ? `mailbridge started on ${facts.hostname} / mailbridge gestartet auf ${facts.hostname}`
      : `mailbridge stopping on ${facts.hostname} / mailbridge wird beendet auf ${facts.hostname}`;
  const counts = Object.entries(facts.counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const en = [
    event === 'start' ? `mailbridge ${facts.version} started the SMTP relay on ${facts.hostname} at ${now.toISOString()}.` : `mailbridge ${facts.version} is stopping the SMTP relay on ${facts.hostname} at ${now.toISOString()}.`,
    '',
    `Listeners: ${facts.listeners.join(', ') || '-'}`,
    `Queue: ${counts || 'empty'}`,
    ...(facts.uptimeSeconds !== undefined ? [`Running for: ${facts.uptimeSeconds} s`] : []),
    ...(facts.note ? [`Note: ${facts.note}`] : []),
  ];
  const de = [
    event === 'start' ? `mailbridge ${facts.version} hat das SMTP-Relay auf ${facts.hostname} um ${now.toISOString()} gestartet.` : `mailbridge ${facts.version} beendet das SMTP-Relay auf ${facts.hostname} um ${now.toISOString()}.`,
    '',
    `Listener: ${facts.listeners.join(', ') || '-'}`,
    `Warteschlange: ${counts || 'leer'}`,
    ...(facts.uptimeSeconds !== undefined ? [`Laufzeit: ${facts.uptimeSeconds} s`] : []),
    ...(facts.note ? [`Hinweis: ${facts.note}`] : []),
  ];
  return queueAdminText(queue, config, { event, subject, en, de }, now);
}

/**
 * Queues one admin mail with a subject and English and German lines (start and stop mails above;
 * credential expiry warnings from src/check/expiry.ts). The event goes into X-Mailbridge-Event.
 */
export async function queueAdminText(queue: Queue, config: AdminMailConfig, mail: { event: string; subject: string; en: string[]; de: string[] }, now = new Date()): Promise<string> {
  const domain = config.from.split('@')[1] ?? 'mailbridge.invalid';
  const raw = await new MailComposer({
    from: { name: 'mailbridge', address: config.from },
    to: config.to,
    subject: mail.subject,
    text: `${mail.en.join('\n')}\n\n---- Deutsch ----\n\n${mail.de.join('\n')}\n`,
    date: now,
    messageId: `<${randomBytes(12).toString('hex')}@${domain}>`,
    headers: { 'Auto-Submitted': 'auto-generated', 'X-Mailbridge-Event': mail.event },
    newline: '\r\n',
  })
    .compile()
    .build();
  const id = queue.newId();
  const w = queue.spool.createWriter(id);
  w.end(raw);
  await once(w, 'close');
  await queue.accept({ id, sender: config.from, recipients: [...config.to], size: raw.length, bodyType: '7bit', smtpUtf8: false });
  return id;
}

/** Resolves when the message is sent (true) or after `ms` (false). Polls the queue. */
export async function waitSent(queue: Queue, id: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const rec = await queue.get(id);
    if (rec?.state === 'sent') return true;
    if (!rec || rec.state === 'bounced' || Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
