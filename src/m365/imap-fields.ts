/**
 * The settings that say how to reach an IMAP server, the same for the connector's IMAP source and
 * the IMAP watcher, since both open their sessions through the one opener (imap.ts). The fields are
 * spread into each capability's own schema.
 */
import { z } from 'zod';

export const IMAP_TLS = ['implicit', 'starttls', 'none'] as const;
export type ImapTls = (typeof IMAP_TLS)[number];

export const imapServerFields = {
  host: z
    .string()
    .min(1)
    .optional()
    .meta({ description: "IMAP server (default: the connection's cloud, e.g. outlook.office365.com; outlook.office365.us for GCC High)" }),
  port: z.int().min(1).max(65535).default(993),
  tls: z
    .enum(IMAP_TLS)
    .default('implicit')
    .meta({ description: 'implicit: TLS from the start (993); starttls: upgrade on 143; none: cleartext, only for a server on this machine' }),
  caFile: z
    .string()
    .optional()
    .meta({ description: 'Extra CA certificates (PEM) to trust, e.g. of an on-premises server, a TLS-inspecting proxy or the sandbox' }),
  servername: z.string().optional().meta({ description: 'TLS server name, when host is an IP address' }),
};
