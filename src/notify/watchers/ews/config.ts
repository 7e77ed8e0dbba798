/**
 * Settings of the EWS watcher (one per listener of an `ews` watch pool); the watch service composes
 * them into its config section (src/notify/watchers/config.ts). Limits from microsoft-facts.md §5:
 * ConnectionTimeout 1–30 minutes, StatusFrequency 1–1440 minutes, the EWS Managed API's 45 s
 * heartbeat expectation (a stream silent for twice that is dead).
 */
import { z } from 'zod';
import { settingsGroup } from '../../../config/settings-group.ts';
import { intField, numberField } from '../../../config/number-field.ts';

export const EWS_VERSIONS = ['Exchange2010_SP1', 'Exchange2010_SP2', 'Exchange2013', 'Exchange2013_SP1', 'Exchange2016'] as const;

export const ewsWatchSchema = z
  .object({
    url: z
      .url({ protocol: /^https?$/ })
      .optional()
      .meta({ description: 'EWS URL, e.g. https://mail.contoso.com/EWS/Exchange.asmx; without it, autodiscover finds it per mailbox' }),
    autodiscover: settingsGroup({
      url: z.url({ protocol: /^https?$/ }).optional().meta({ description: 'A fixed autodiscover endpoint (…/autodiscover.svc, …/autodiscover.xml or …/autodiscover.json/v1.0) instead of the usual candidates' }),
      prefer: z.enum(['external', 'internal']).default('external').meta({ description: 'Which EWS URL to use when autodiscover names both' }),
      cacheHours: numberField({ min: 0, max: 720, default: 24 }, 'How long autodiscover answers are kept'),
    }),
    servers: z
      .array(z.string().min(1))
      .optional()
      .meta({ description: 'Watch only mailboxes on these mailbox servers (autodiscover InternalMailboxServer; short or full names)' }),
    mode: z.enum(['streaming', 'push']).default('streaming').meta({ description: 'streaming: mailbridge holds the connection; push: Exchange calls the inbound listener' }),
    connectionTimeoutMinutes: intField({ min: 1, max: 30, default: 30 }, 'GetStreamingEvents ConnectionTimeout (1–30 minutes)'),
    heartbeatSeconds: numberField({ min: 1, max: 600, default: 45 }, 'Expected heartbeat; a stream silent for twice this long is reconnected'),
    statusFrequencyMinutes: intField({ min: 1, max: 1440, default: 30 }, 'Push: StatusFrequency; silence over twice this resubscribes'),
    requestTimeoutSeconds: numberField({ min: 1, max: 600, default: 60 }),
    authentication: z
      .enum(['basic', 'ntlm'])
      .default('basic')
      .meta({
        description:
          "How a listener's username/password signs in on premises: ntlm (Windows authentication, what Exchange's EWS virtual directory ships with; username DOMAIN\\user or a UPN) or basic (where Basic is enabled on /EWS)",
      }),
    impersonation: z.boolean().default(true).meta({ description: 'Send ExchangeImpersonation (needed for app-only tokens and service accounts with ApplicationImpersonation)' }),
    version: z.enum(EWS_VERSIONS).default('Exchange2013').meta({ description: 'RequestServerVersion' }),
    caFile: z.string().min(1).optional().meta({ description: 'PEM file of the CA that issued the Exchange server certificate' }),
    subscribeConcurrency: intField({ min: 1, max: 200, default: 16 }, 'Subscribe and catch-up requests in flight at once'),
    maxBackOffSeconds: numberField({ min: 1, max: 3600, default: 600 }, 'Longest ErrorServerBusy back-off honoured in one wait'),
  })
  .strict();

export type EwsWatchOptions = z.infer<typeof ewsWatchSchema>;
