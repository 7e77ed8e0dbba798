/**
 * The settings of the inbound listener Microsoft calls back (src/m365/subscriptions/inbound.ts), on
 * their own so that the config schema does not load Fastify: every command parses the config, and
 * only the processes that listen need the server.
 */
import { z } from 'zod';

/** The public https:// URL Microsoft calls (validated: Microsoft refuses any other scheme). */
export function publicUrlField(description: string) {
  return z
    .url()
    .refine((u) => u.startsWith('https://'), { message: 'Microsoft only calls https:// URLs / Microsoft ruft nur https://-URLs auf' })
    .meta({ description });
}

export const DEFAULT_LISTEN = { host: '0.0.0.0', port: 8443 } as const;

/** Where the inbound listener binds, and its certificate. */
export function listenSchema() {
  return z
    .object({
      host: z.string().default(DEFAULT_LISTEN.host),
      port: z.int().min(0).max(65535).default(DEFAULT_LISTEN.port),
      certFile: z.string().optional().meta({ description: 'TLS certificate chain (PEM) of the public name; without it the listener speaks plain HTTP for a TLS-terminating proxy' }),
      keyFile: z.string().optional().meta({ description: 'Its private key (PEM)' }),
    })
    .strict();
}

export type ListenConfig = z.infer<ReturnType<typeof listenSchema>>;

/**
 * The URL Microsoft calls for a listener: the configured public URL, else the listener itself
 * (0.0.0.0 as 127.0.0.1), without a trailing slash. `mailbridge check` probes this same URL.
 */
export function publicUrlOf(listen: ListenConfig, publicUrl?: string): string {
  return (publicUrl ?? `https://${listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host}:${listen.port}`).replace(/\/+$/, '');
}
