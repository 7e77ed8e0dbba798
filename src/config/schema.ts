/**
 * The schema of mailbridge.yaml. One zod schema is the single source for validation, the types the
 * code uses, defaults, and the JSON Schema printed by `mailbridge config schema` for editors.
 *
 * Secret fields hold either an encrypted value (`enc:v1:…`, written by `mailbridge secret set`) or,
 * tolerated with a warning from `config check`, plain text. They are declared with `secretField`
 * (config/secret-field.ts), whose mark config/schema-walk.ts reads, so a new secret field needs
 * nothing else.
 */
import { z } from 'zod';
import { secretField } from './secret-field.ts';
import { relaySchema } from '../relay/config.ts';
import { connectorsSchema } from '../connector/config.ts';
import { notifySchema } from '../notify/config.ts';

export const CLOUDS = ['global', 'gcc', 'gcc-high', 'dod', 'china'] as const;
export type CloudName = (typeof CLOUDS)[number];

export { secretField };

const scopes = z.array(z.string().min(1)).min(1);

export const certificateSchema = z
  .object({
    path: z.string().min(1).meta({ description: 'PEM (certificate + private key) or PFX/PKCS#12 file' }),
    password: secretField('Password of the PFX file or of an encrypted PEM key').optional(),
    privateKeyPath: z.string().min(1).optional().meta({ description: 'Private key in its own PEM file, if not in `path`' }),
    algorithm: z
      .enum(['PS256', 'RS256'])
      .default('PS256')
      .meta({ description: 'PS256 with x5t#S256 (current Entra ID docs) or RS256 with the SHA-1 x5t (older clients)' }),
  })
  .strict();

export const connectionSchema = z
  .object({
    kind: z.literal('entra').default('entra'),
    cloud: z.enum(CLOUDS).default('global'),
    tenantId: z.string().min(1).meta({ description: 'Directory (tenant) ID GUID, or a verified domain' }),
    clientId: z.string().min(1).meta({ description: 'Application (client) ID of the app registration' }),
    flow: z
      .enum(['client-credentials', 'auth-code', 'device-code'])
      .default('client-credentials')
      .meta({ description: 'client-credentials: app-only; auth-code / device-code: delegated sign-in of a user' }),
    // `credential: true` marks the ways a connection proves who it is; `config check` warns when a
    // flow that needs one has none. A new kind of credential only needs the same mark.
    clientSecret: secretField('Client secret of the app registration').optional().meta({ credential: true }),
    clientSecretExpires: z.iso
      .date()
      .optional()
      .meta({ description: 'Expiry date of the client secret (YYYY-MM-DD), as the Entra portal shows it' }),
    certificate: certificateSchema.optional().meta({ credential: true }),
    redirectUri: z
      .url()
      .optional()
      .meta({ description: 'auth-code: the redirect URI registered on the app; mailbridge serves it' }),
    account: z.string().optional().meta({ description: 'Delegated flows: the signed-in account (UPN) whose tokens to use' }),
    tokenEndpoint: z
      .string()
      .optional()
      .meta({ description: 'Token endpoint template with #TenantID#, e.g. https://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token' }),
    scopes: z
      .object({ exchange: scopes.optional(), graph: scopes.optional() })
      .strict()
      .default({})
      .meta({ description: 'Override the scopes per resource (defaults follow the cloud)' }),
    graceSeconds: z.int().min(0).max(3600).default(30).meta({ description: 'Renew a token this many seconds before it expires' }),
    proxy: z.url().optional().meta({ description: 'Outbound HTTP proxy for this connection (else server.proxy, else HTTPS_PROXY)' }),
    caFile: z.string().optional().meta({ description: 'Extra CA certificates (PEM) to trust, e.g. the sandbox CA' }),
  })
  .strict();

export const configSchema = z
  .object({
    lang: z.enum(['en', 'de']).optional().meta({ description: 'Language of messages (default: from LANG)' }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
    secrets: z
      .object({ keyFile: z.string().default('mailbridge.key').meta({ description: 'AES-256 key file, created with mode 0600 on first use; MAILBRIDGE_KEY overrides it' }) })
      .strict()
      .default({ keyFile: 'mailbridge.key' }),
    store: z
      .discriminatedUnion('driver', [
        z.object({ driver: z.literal('sqlite'), path: z.string().default('data/mailbridge.db') }).strict(),
        z.object({ driver: z.literal('postgres'), url: secretField('PostgreSQL connection URL, e.g. postgres://user:password@host/db') }).strict(),
      ])
      .default({ driver: 'sqlite', path: 'data/mailbridge.db' }),
    server: z
      .object({
        listen: z.string().default('127.0.0.1'),
        port: z.int().min(0).max(65535).default(8080),
        publicUrl: z.url().optional().meta({ description: 'URL under which admins and Microsoft reach this server (sign-in redirects, notifications)' }),
        proxy: z.url().optional().meta({ description: 'Default outbound HTTP proxy' }),
        metricsToken: secretField('Bearer token GET /metrics requires (set it when server.listen is reachable from other hosts); without it /metrics is open to whoever reaches server.listen').optional(),
      })
      .strict()
      .default({ listen: '127.0.0.1', port: 8080 }),
    connections: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), connectionSchema).default({}),
    relay: relaySchema.optional(),
    connectors: connectorsSchema.optional(),
    notify: notifySchema.optional(),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConnectionConfig = z.infer<typeof connectionSchema>;
export type CertificateConfig = z.infer<typeof certificateSchema>;
