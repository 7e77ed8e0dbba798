/**
 * The `connections` section of mailbridge.yaml: how a connection signs in to Entra ID (tenant, app,
 * flow, credential, cloud, proxy, extra CA). Identity owns it; the composition root (src/app/schema.ts)
 * puts it under `connections.<name>`.
 */
import { z } from 'zod';
import { intField } from '../config/number-field.ts';
import { readFileField } from '../config/pem-files.ts';
import { secretField } from '../config/secret-field.ts';

export const CLOUDS = ['global', 'gcc', 'gcc-high', 'dod', 'china'] as const;
export type CloudName = (typeof CLOUDS)[number];

const scopes = z.array(z.string().min(1)).min(1);

export const certificateSchema = z
  .object({
    path: readFileField('PEM (certificate + private key) or PFX/PKCS#12 file'),
    password: secretField('Password of the PFX file or of an encrypted PEM key').optional(),
    privateKeyPath: readFileField('Private key in its own PEM file, if not in `path`').optional(),
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
    graceSeconds: intField({ min: 0, max: 3600, default: 30 }, 'Renew a token this many seconds before it expires'),
    proxy: z.url().optional().meta({ description: 'Outbound HTTP proxy for this connection (else server.proxy, else HTTPS_PROXY)' }),
    caFile: readFileField('Extra CA certificates (PEM) to trust, e.g. the sandbox CA').optional(),
    exchangeAdminUrl: z
      .url()
      .optional()
      .meta({ description: "Exchange Online admin API that `mailbridge check` reads Exchange permissions through (default: the cloud's, https://outlook.office365.com/adminapi/beta); used only when the app has Exchange.ManageAsApp" }),
  })
  .strict();

export type ConnectionConfig = z.infer<typeof connectionSchema>;
export type CertificateConfig = z.infer<typeof certificateSchema>;
