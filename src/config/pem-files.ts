/**
 * Files on the gateway host that mailbridge reads, named in the configuration: readFileField for
 * one (a connection's certificate, its key, extra CAs), pemFilePair for a certificate and its
 * private key as two PEM files (server.tls, relay.tls; each section keeps the key names its admins
 * write, {cert, key} and {certPath, keyPath}). Every such path carries the mark `file: true`, so
 * `mailbridge config check` reports a missing or unreadable one (config/index.ts) instead of the
 * gateway failing only when it first needs the file.
 */
import { z } from 'zod';

/** The path of a file mailbridge reads; `description` for the JSON Schema and docs/<lang>/reference/config.md. */
export function readFileField(description: string) {
  return z.string().min(1).meta({ description, file: true });
}

export function pemFilePair<C extends string, K extends string>(names: { cert: C; key: K }, descriptions: { cert: string; key: string }) {
  const shape = { [names.cert]: readFileField(descriptions.cert), [names.key]: readFileField(descriptions.key) } as Record<C | K, ReturnType<typeof readFileField>>;
  return z.object(shape).strict();
}
