/**
 * Settings of the Graph watcher (one per listener of a `graph` watch pool). The watch service
 * composes them into its config section; every field has a default except the connection's own
 * values, which the service passes in (baseUrl from the connection's cloud, caFile for sandboxes).
 *
 * Limits from microsoft-facts.md: subscriptions on Outlook messages live at most 4,230 minutes
 * (1 day with resource data, §4.1), a value under 45 minutes is raised to 45 by Graph; Outlook allows
 * 4 concurrent requests per app and mailbox (§4.8).
 */
import { z } from 'zod';
import { settingsGroup } from '../../../config/settings-group.ts';
import { intField, numberField } from '../../../config/number-field.ts';
import { graphUrlField } from '../../../m365/graph-url.ts';

/** Longest lifetime of a subscription on Outlook messages without resource data (facts §4.1). */
export const MAX_EXPIRATION_MINUTES = 4230;
/** Longest lifetime with includeResourceData (facts §4.1: 1 day). */
export const MAX_EXPIRATION_MINUTES_RICH = 1440;

export const graphWatchSchema = z
  .object({
    baseUrl: graphUrlField('Graph for the watcher.'),
    caFile: z.string().min(1).optional().meta({ description: 'Extra CA certificate (PEM file) to trust for Graph, e.g. the sandbox CA' }),
    changeTypes: z
      .array(z.enum(['created', 'updated', 'deleted']))
      .min(1)
      .default(['created', 'updated', 'deleted'])
      .meta({ description: 'Changes to subscribe to: created (new mail), updated (read state), deleted' }),
    expirationMinutes: intField({ min: 45, max: MAX_EXPIRATION_MINUTES, default: MAX_EXPIRATION_MINUTES }, 'Lifetime asked for each subscription (Graph: at most 4,230 minutes for messages; with includeResourceData at most 1,440 are asked for)'),
    renewBeforeMinutes: intField({ min: 5, max: 1440, default: 60 }, 'Renew a subscription this long before it expires'),
    immutableIds: z
      .boolean()
      .default(true)
      .meta({ description: 'Ask Graph for immutable message ids (Prefer: IdType="ImmutableId"), so a moved message keeps its id' }),
    lifecycleNotifications: z
      .boolean()
      .default(true)
      .meta({ description: 'Ask for lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed)' }),
    includeResourceData: z
      .boolean()
      .default(false)
      .meta({ description: 'Rich notifications: Graph sends the message\'s sender, subject and date encrypted in the notification (subscriptions then live at most 1 day)' }),
    pageSize: intField({ min: 1, max: 1000, default: 200 }, 'Messages per delta page (Prefer: odata.maxpagesize)'),
    requestsPerMailbox: intField({ min: 1, max: 4, default: 4 }, 'Graph requests at once per mailbox (Outlook allows 4 per app and mailbox)'),
    setupConcurrency: intField({ min: 1, max: 256, default: 16 }, 'Mailboxes set up (subscription created or renewed, catch-up run) at once, at start and on renewal'),
    syncConcurrency: intField({ min: 1, max: 1024, default: 128 }, 'Delta rounds running at once across all mailboxes of this listener'),
    retry: settingsGroup({
      initialSeconds: numberField({ min: 1, max: 3600, default: 30 }, 'Wait before the first retry of a failed subscription'),
      maxSeconds: numberField({ min: 10, max: 86400, default: 1800 }, 'Longest wait between two attempts'),
    }),
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9/_-]*[A-Za-z0-9_-]$/)
      .default('/notify/graph')
      .meta({ description: 'Path on the inbound HTTPS listener; the listener id is appended (notificationUrl = publicUrl + path + /<listener>)' }),
  })
  .strict();

export type GraphWatchOptions = z.infer<typeof graphWatchSchema>;

