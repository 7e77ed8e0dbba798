/**
 * The `api:` section of mailbridge.yaml: the admin API's keys. Each key has a name (who, in the
 * audit log), the key itself (a secret field: stored sealed as enc:v1:…, compared by its SHA-256
 * digest in memory, never printed) and its scopes. Keys of notify.api.keys keep working for the
 * subscriptions routes alone (scope `subscriptions`), as before the admin API existed.
 */
import { z } from 'zod';
import { settingsGroup } from '../config/settings-group.ts';
import { intField } from '../config/number-field.ts';
import { secretField } from '../config/secret-field.ts';
import { passwordHashField } from '../config/hash-field.ts';

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

/** What a person may do: reader → read; operator → read, operate; admin → everything. */
export const ROLES = ['reader', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export const ROLE_SCOPES: Record<Role, readonly ApiScope[]> = { reader: ['read'], operator: ['operate'], admin: ['admin'] };

export const apiUserSchema = z
  .object({
    password: passwordHashField('mailbridge api user set <name> --role <role>', 'scrypt hash of the password ($scrypt$ln=15,r=8,p=1$…), written by `mailbridge api user set <name>`; not a secret, the clear password is never stored'),
    role: z.enum(ROLES).meta({ description: 'reader (read), operator (read and queue/connector actions), admin (everything)' }),
  })
  .strict();

export const apiSchema = z
  .object({
    users: z
      .record(z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/), apiUserSchema)
      .default({})
      .meta({ description: 'Local admin users of the console (for installs without Entra ID); the audit log names them user:<name>' }),
    signin: z
      .object({
        entra: z
          .object({
            connection: z.string().min(1).meta({ description: 'The connection (tenant, app, credential) admins sign in through; its app defines the app roles reader, operator, admin' }),
            redirectUri: z.url().optional().meta({ description: 'Redirect URI registered on the app (Web platform); default: <server.publicUrl>/login/entra/callback' }),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({})
      .meta({ description: 'How admins sign in to the console besides local users: Entra ID (OpenID Connect, auth code + PKCE)' }),
    session: settingsGroup({
      idleMinutes: intField({ min: 1, max: 1440, default: 30 }, 'A console session ends after this many minutes without a request'),
      maxHours: intField({ min: 1, max: 168, default: 12 }, 'A console session ends this many hours after sign-in, however active'),
    }),
    keys: z
      .record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), apiKeySchema)
      .default({})
      .meta({ description: 'Named keys of the admin API /api/v1, e.g. keys.monitoring; set each with `mailbridge secret set api.keys.<name>.key`. The name is who the audit log names' }),
  })
  .strict();

export type ApiConfig = z.infer<typeof apiSchema>;

/** Where Entra ID sends a console sign-in back to: api.signin.entra.redirectUri, else <server.publicUrl or http://localhost:port>/login/entra/callback. */
export function consoleRedirectUri(api: ApiConfig | undefined, server: { publicUrl?: string | undefined; port?: number } | undefined): string {
  const base = server?.publicUrl ? server.publicUrl.replace(/\/+$/, '') : `http://localhost:${server?.port ?? 8080}`;
  return api?.signin.entra?.redirectUri ?? `${base}/login/entra/callback`;
}
