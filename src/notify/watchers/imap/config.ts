/**
 * Settings of the IMAP IDLE watcher (one block per watch listener that uses IMAP). The lead's watch
 * configuration embeds this schema; defaults fit Exchange Online on 993 with XOAUTH2.
 */
import { z } from 'zod';
import { settingsGroup } from '../../../config/settings-group.ts';
import { intField } from '../../../config/number-field.ts';
import { secretField } from '../../../config/secret-field.ts';
import { imapServerFields } from '../../../m365/imap-fields.ts';
export const imapWatchSchema = z
  .object({
    ...imapServerFields,
    auth: z
      .union([
        z.literal('xoauth2'),
        z
          .object({
            user: z
              .string()
              .min(1)
              .default('{mailbox}')
              .meta({ description: 'Login name; {mailbox} stands for the watched address (e.g. "{mailbox}*master" for a Dovecot master user)' }),
            password: secretField('Password of that login'),
          })
          .strict(),
      ])
      .default('xoauth2')
      .meta({ description: "xoauth2: the connection's token, user = the mailbox (Exchange Online, IMAP.AccessAsApp); or { user, password } for on-premises servers" }),
    idleRestartSeconds: intField({ min: 60, max: 1740, default: 600 }, 'Restart IDLE this often (Exchange ends IDLE after 29 minutes; 10 minutes is known to work well)'),
    resyncSeconds: intField({ min: 30, max: 86_400, default: 900 }, 'Look at each folder this often even without a word from the server (a safety net for servers that drop IDLE notifications; the only mechanism without IDLE)'),
    reconnect: settingsGroup({
      initialSeconds: z.number().positive().max(3600).default(2),
      maxSeconds: z.number().positive().max(3600).default(300),
    })
      .meta({ description: 'Back-off between reconnect attempts of one folder: initial, doubled per failure, capped at max (with 20 % jitter)' }),
    concurrentLogins: intField({ min: 1, max: 200, default: 10 }, 'Logins (and first catch-ups) in progress at once per listener, so that many mailboxes do not storm the server at start or after an outage'),
    connectTimeoutSeconds: intField({ min: 1, max: 300, default: 30 }),
  })
  .strict();

export type ImapWatchOptions = z.infer<typeof imapWatchSchema>;
