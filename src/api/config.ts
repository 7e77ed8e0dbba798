/**
 * The `api:` section of mailbridge.yaml: the admin API's keys. Each key has a name (who, in the
 * audit log), the key itself (a secret field: stored sealed as enc:v1:…, compared by its SHA-256
 * digest in memory, never printed) and its scopes. Keys of notify.api.keys keep working for the
 * subscriptions routes alone (scope `subscriptions`), as before the admin API existed.
 */
import { z } from 'zod';
import { secretField } from '../config/secret-field.ts';

/**
 * read: every GET of the admin routes; operate: queue actions and connector retries (and read);
 * admin: config validation and the audit log (and operate, read, subscriptions);
 * subscriptions: the notification subscriptions routes only (what apps and MDMs get).
 */
export const API_SCOPES = ['read', 'operate', 'admin', 'subscriptions'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export const apiKeySchema = z
  .object({
    key: secretField('The API key (at least 16 random characters) callers send as `Authorization: Bearer <key>`'),
    scopes: z
      .array(z.enum(API_SCOPES))
      .min(1)
      .meta({ description: 'What the key may do: read, operate (queue actions, retries; includes read), admin (includes operate, read and subscriptions), subscriptions' }),
  })
  .strict();

export const apiSchema = z
  .object({
    keys: z
      .record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), apiKeySchema)
      .default({})
      .meta({ description: 'Named keys of the admin API /api/v1, e.g. keys.monitoring; set each with `mailbridge secret set api.keys.<name>.key`. The name is who the audit log names' }),
  })
  .strict();

export type ApiConfig = z.infer<typeof apiSchema>;
