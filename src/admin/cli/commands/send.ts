/**
 * `mailbridge send --from … --to … [--subject …] [--attach …] [--via smtp|graph]`: sends a test
 * mail through the route relay.routes picks for the sender — the same transport, token and mailbox
 * the relay would use, but directly (not through the queue), so each step shows as it happens:
 * route, token, connect, auth, send, accept. A failing step prints its MB code with cause and fix
 * (the PowerShell line). Exit code 0 when Microsoft accepted the message, 1 otherwise. Its option
 * and step texts are in send.texts.json.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import MailComposer from 'nodemailer/lib/mail-composer';
import { MbError, explain, renderText } from '../../../errors/index.ts';
import type { Lang, Text } from '../../../i18n/index.ts';
import { relaySchema } from '../../../relay/config.ts';
import { RoutedTransport, type StepEvent, type StepName } from '../../../relay/transports/index.ts';
import type { OutboundMessage } from '../../../relay/transport.ts';
import { defineCommand } from '../command.ts';
import { noMoreArgs, usageError } from '../args.ts';
import { openIdentity } from './token.ts';
import { transports } from '../../../app/plugins.ts';
import texts from './send.texts.json' with { type: 'json' };

const STEP: Record<StepName, Text> = texts.steps;

export const command = defineCommand({
  name: 'send',
  summary: { en: 'Send a test mail through the configured route', de: 'Testnachricht über die eingerichtete Route senden' },
  help: {
    en: `Usage: mailbridge send --from ADDRESS --to ADDRESS [options]

Sends a test mail the way the relay would: the first route in relay.routes that matches the sender
(and --user) chooses the connection, the sending mailbox and the transport. Each step is shown as it
happens (route, token, connect, auth, send, accept); a failure shows its MB code, cause and fix.
The message does not go through the queue.

{options}`,
    de: `Aufruf: mailbridge send --from ADRESSE --to ADRESSE [Optionen]

Sendet eine Testnachricht so, wie das Relay es täte: Die erste Route in relay.routes, die zum
Absender (und --user) passt, wählt Verbindung, sendendes Postfach und Transport. Jeder Schritt wird
angezeigt, sobald er geschieht (Route, Token, Verbindung, Anmeldung, Senden, Annahme); ein Fehler
zeigt seinen MB-Code mit Ursache und Behebung. Die Nachricht geht nicht über die Warteschlange.

{options}`,
  },
  options: {
    from: { type: 'string', value: texts.values.address, help: texts.options.from },
    to: { type: 'string', value: texts.values.address, multiple: true, help: texts.options.to },
    cc: { type: 'string', value: texts.values.address, multiple: true, help: texts.options.cc },
    bcc: { type: 'string', value: texts.values.address, multiple: true, help: texts.options.bcc },
    subject: { type: 'string', value: 'TEXT', help: texts.options.subject },
    body: { type: 'string', value: 'TEXT', help: texts.options.body },
    attach: { type: 'string', value: texts.values.file, multiple: true, help: texts.options.attach },
    via: { type: 'string', value: 'smtp|graph', choices: ['smtp', 'graph'], help: texts.options.via },
    user: { type: 'string', value: 'NAME', help: texts.options.user },
    json: { type: 'boolean', help: texts.options.json },
  },
  async run(ctx) {
    const o = ctx.opts;
    const many = (values: string[]) => values.flatMap((v) => v.split(',').map((s) => s.trim()).filter(Boolean));
    const from = o.from;
    const to = many(o.to);
    const cc = many(o.cc);
    const bcc = many(o.bcc);
    const attach = o.attach;
    const subject = o.subject ?? 'mailbridge test message';
    const bodyText = o.body;
    const via = o.via as 'smtp' | 'graph' | undefined;
    const user = o.user;
    const json = o.json;
    const de = ctx.lang === 'de';
    noMoreArgs('send', ctx.lang, ctx.args);
    if (!from || to.length === 0) throw usageError('send', ctx.lang, { en: '--from and --to are required', de: '--from und --to sind erforderlich' });

    const attachments = [];
    for (const path of attach) {
      try {
        attachments.push({ filename: basename(path), content: await readFile(path) });
      } catch (err) {
        throw new MbError('MB_RELAY_ATTACHMENT_UNREADABLE', { path, detail: (err as Error).message });
      }
    }
    const now = new Date();
    const text =
      bodyText ??
      `This is a test message from mailbridge on ${hostname()}, sent ${now.toISOString()} with \`mailbridge send\`.\n\n` +
        `Dies ist eine Testnachricht von mailbridge auf ${hostname()}, gesendet ${now.toISOString()} mit \`mailbridge send\`.\n`;
    const raw = await new MailComposer({
      from,
      to,
      ...(cc.length ? { cc } : {}),
      subject,
      text,
      attachments,
      date: now,
      messageId: `<${randomBytes(12).toString('hex')}@${from.split('@')[1] ?? 'mailbridge.invalid'}>`,
      headers: { 'X-Mailer': 'mailbridge send' },
      newline: '\r\n',
    })
      .compile()
      .build();

    const opened = await openIdentity(ctx);
    const relay = opened.config.relay ?? relaySchema.parse({});
    const controller = new AbortController();
    void ctx.stopSignal.then(() => controller.abort(new Error('interrupted')));
    const steps: StepEvent[] = [];
    const transport = new RoutedTransport({
      config: opened.config,
      routes: relay.routes,
      transports,
      tokens: opened.identity,
      hostname: relay.hostname ?? hostname(),
      log: ctx.log,
      env: ctx.env,
    });
    try {
      const message: OutboundMessage = {
        id: `SEND${randomBytes(6).toString('hex').toUpperCase()}`,
        sender: from,
        recipients: [...to, ...cc, ...bcc],
        mailbox: from.toLowerCase(),
        ...(user !== undefined ? { relayUser: user } : {}),
        size: raw.length,
        bodyType: raw.some((b) => b >= 0x80) ? '8bitmime' : '7bit',
        smtpUtf8: false,
        receivedAt: now,
        attempt: 1,
        isBounce: false,
        body: () => Readable.from([raw]),
        readBody: async () => raw,
        signal: controller.signal,
      };
      if (!json) ctx.out.line(de ? `Sende ${raw.length} Bytes von ${from} an ${message.recipients.join(', ')}` : `Sending ${raw.length} bytes from ${from} to ${message.recipients.join(', ')}`);
      const result = await transport.deliver(message, {
        ...(via ? { via } : {}),
        onStep: (e) => {
          steps.push(e);
          if (!json) ctx.out.line(`${e.ok ? '✔' : '✖'} ${STEP[e.step][ctx.lang].padEnd(10)} ${stepDetail(e.detail ?? '', ctx.lang)}${e.ms !== undefined ? ` (${e.ms} ms)` : ''}`);
        },
      });
      if ('ok' in result) {
        if (json) ctx.out.json({ ok: true, steps, reply: result.detail });
        else ctx.out.line(de ? 'Microsoft 365 hat die Nachricht angenommen.' : 'Microsoft 365 accepted the message.');
        return 0;
      }
      const e = explain(result.mbCode, result.params ?? {}, ctx.lang);
      if (json) {
        ctx.out.json({ ok: false, temporary: 'temporary' in result, steps, error: e, reply: result.code, retryAfter: 'temporary' in result ? result.retryAfter : undefined });
      } else {
        ctx.out.line();
        ctx.out.line(renderText(e, ctx.lang));
        if (result.code) ctx.out.line(`  ${de ? 'Antwort des Servers' : 'Server reply'}: ${result.code}`);
        ctx.out.line(
          'temporary' in result
            ? de
              ? '  Das Relay würde diese Nachricht zurückstellen und erneut versuchen.'
              : '  The relay would defer this message and try again.'
            : de
              ? '  Das Relay würde diese Nachricht mit einem Unzustellbarkeitsbericht zurückweisen.'
              : '  The relay would bounce this message with a delivery report.',
        );
      }
      return 1;
    } finally {
      await transport.close();
      await opened.close();
    }
  },
});

/**
 * The transports describe each step in English (their log lines use the same words); in German the
 * words mailbridge wrote are translated here. What a server answered (SMTP replies, Graph error
 * texts) is quoted as it came, in Microsoft's words.
 */
const DETAIL_DE: Array<[RegExp, string]> = [
  [/^route (\S+): (\S+) via connection (\S+) as (\S+)$/, 'Route $1: $2 über Verbindung $3 als $4'],
  [/^no route in relay\.routes for sender (\S+) \(relay user (\S+)\)$/, 'keine Route in relay.routes für Absender $1 (Relay-Benutzer $2)'],
  [/^no route for (\S+)$/, 'keine Route für $1'],
  [/^sender (.+) not allowed on route (\S+)(?: \(sendAs: (.*)\))?$/, 'Absender $1 auf Route $2 nicht erlaubt'],
  [/^sender (.+) rewritten to (\S+) \(original kept as Reply-To\)$/, 'Absender $1 umgeschrieben auf $2 (Original als Reply-To behalten)'],
  [/^sent over SMTP instead: (\d+) bytes is over Graph's limit$/, 'stattdessen über SMTP gesendet: $1 Bytes überschreiten die Grenze von Graph'],
  [/^sent over SMTP instead: To\/Cc name (.+) outside the envelope$/, 'stattdessen über SMTP gesendet: To/Cc nennen $1 außerhalb des Umschlags'],
  [/: delegated \(([^)]*)\)/, ': delegiert ($1)'],
  [/: app-only/, ': nur App'],
  [/, cached, valid until /, ', aus dem Cache, gültig bis '],
  [/, valid until /, ', gültig bis '],
  [/ \(open connection reused, (\d+) sent on it\)$/, ' (offene Verbindung wiederverwendet, $1 darüber gesendet)'],
  [/^(\S+) plain$/, '$1 unverschlüsselt'],
  [/^AUTH XOAUTH2 as (\S+)$/, 'AUTH XOAUTH2 als $1'],
  [/^(MAIL FROM:<[^>]*>) (\d+) RCPT, (\d+) bytes$/, '$1 $2 RCPT, $3 Bytes'],
  [/^POST (\S+) \((\d+) bytes MIME, (\d+) recipients?\)$/, 'POST $1 ($2 Bytes MIME, $3 Empfänger)'],
  [/^(\d+) bytes > (\d+) bytes of MIME \(4 MB request after base64\)$/, '$1 Bytes > $2 Bytes MIME (4-MB-Anfrage nach Base64)'],
];

export function stepDetail(detail: string, lang: Lang): string {
  if (lang !== 'de') return detail;
  let out = detail;
  for (const [re, de] of DETAIL_DE) out = out.replace(re, de);
  return out;
}
