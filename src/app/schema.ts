/**
 * The schema of mailbridge.yaml, assembled from the sections each part of mailbridge owns: one zod
 * schema is the single source for validation, the types the code uses, defaults, and the JSON
 * Schema printed by `mailbridge config schema` for editors (and the generated docs/<lang>/reference/config.md).
 *
 * Sections: lang, log and server belong to the gateway as a whole and are declared here; secrets to
 * the secret box (config/secrets.ts), store to the store, connections to identity, relay, connectors
 * and notify to their capabilities. A capability's secret fields use `secretField`
 * (config/secret-field.ts), whose mark config/schema-walk.ts reads, so a new secret field needs
 * nothing else. The other kinds every section has are declared one way too, through config/:
 * numbers with their range and default (intField, numberField), groups whose every setting has a
 * default (settingsGroup), password hashes (passwordHashField) and a certificate with its key as
 * PEM files (pemFilePair).
 */
import { z } from 'zod';
import { settingsGroup } from '../config/settings-group.ts';
import { intField } from '../config/number-field.ts';
import { pemFilePair } from '../config/pem-files.ts';
import { secretField } from '../config/secret-field.ts';
import { secretsSchema } from '../config/secrets.ts';
import { connectionSchema } from '../identity/config.ts';
import { storeSchema } from '../store/config.ts';
import { relaySchema } from '../relay/config.ts';
import { connectorsSchema } from '../connector/config.ts';
import { notifySchema } from '../notify/config.ts';
import { apiSchema } from '../api/config.ts';
import { nodeSchema } from '../cluster/config.ts';

export const serverSchema = settingsGroup({
  listen: z
    .string()
    .default('127.0.0.1')
    // "127.0.0.1:8080" is what admins write from habit; it fails later as a host name nobody resolves.
    .refine((v) => !/^(\[[^\]]*\]|[^:]*):\d+$/.test(v), { message: 'the address only; the port goes in server.port / nur die Adresse; der Port gehört in server.port' })
    .meta({ description: 'Address the HTTP server (console, API, /health, /metrics) listens on: an IP address or host name, without the port (server.port)' }),
  port: intField({ min: 0, max: 65535, default: 8080 }),
  publicUrl: z.url().optional().meta({ description: 'URL under which admins and Microsoft reach this server (sign-in redirects, notifications)' }),
  proxy: z.url().optional().meta({ description: 'Default outbound HTTP proxy' }),
  metricsToken: secretField('Bearer token GET /metrics requires (set it when server.listen is reachable from other hosts); without it /metrics is open to whoever reaches server.listen').optional(),
  tls: pemFilePair(
    { cert: 'cert', key: 'key' },
    {
      cert: 'Path of the PEM certificate file (with its chain) the gateway serves HTTPS with',
      key: 'Path of the PEM private key file of the certificate (unencrypted, readable by the mailbridge user)',
    },
  )
    .optional()
    .meta({ description: 'Serve HTTPS instead of HTTP. Needed when server.listen is reachable from other hosts (not loopback), unless server.insecure is set' }),
  insecure: z
    .boolean()
    .default(false)
    .meta({ description: 'Serve plain HTTP on a non-loopback server.listen anyway: only when a reverse proxy in front terminates TLS (passwords, session cookies and API keys cross the network in clear otherwise)' }),
});

export const configSchema = z
  .object({
    lang: z.enum(['en', 'de']).optional().meta({ description: 'Language of messages (default: from LANG)' }),
    log: settingsGroup({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }),
    secrets: secretsSchema,
    store: storeSchema,
    node: nodeSchema.meta({ description: 'This node among several on one PostgreSQL store (its name); the only setting that may differ between nodes' }),
    server: serverSchema,
    connections: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), connectionSchema).default({}),
    relay: relaySchema.optional(),
    connectors: connectorsSchema.optional(),
    notify: notifySchema.optional(),
    api: apiSchema.optional().meta({ description: 'The admin API under /api/v1 (reference at /api/reference): its keys and their scopes' }),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type { ConnectionConfig, CertificateConfig } from '../identity/config.ts';
