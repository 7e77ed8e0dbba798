/**
 * A certificate and its private key as two PEM files on the gateway host (server.tls, relay.tls).
 * Each section keeps the key names its admins write ({cert, key}, {certPath, keyPath}) and says
 * what the files are for; both paths carry the mark `file: true` (a file mailbridge reads at
 * start), so `mailbridge config check` reports a missing or unreadable one (config/index.ts)
 * instead of serve or the relay failing only when they start.
 */
import { z } from 'zod';

/** The path of a file mailbridge reads; `description` for the JSON Schema and docs/<lang>/reference/config.md. */
function readFileField(description: string) {
  return z.string().min(1).meta({ description, file: true });
}

export function pemFilePair<C extends string, K extends string>(names: { cert: C; key: K }, descriptions: { cert: string; key: string }) {
  const shape = { [names.cert]: readFileField(descriptions.cert), [names.key]: readFileField(descriptions.key) } as Record<C | K, ReturnType<typeof readFileField>>;
  return z.object(shape).strict();
}
