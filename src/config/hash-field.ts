/**
 * The one password-hash field type of mailbridge.yaml (relay.users.<name>.passwordHash,
 * api.users.<name>.password): a scrypt hash as util/password.ts makes and checks it. Its mark
 * (`hash: true`, read by config/schema-walk.ts) keeps it out of every answer like a secret, since a
 * shown hash can be attacked offline, though there is nothing to seal or reveal.
 */
import { z } from 'zod';
import { parsePasswordHash } from '../util/password.ts';

/** A password hash written by `command` (named to whoever sets a wrong value); `description` for the JSON Schema and docs. */
export function passwordHashField(command: string, description: string) {
  return z
    .string()
    .refine((s) => parsePasswordHash(s) !== undefined, { message: `not a scrypt hash / kein scrypt-Hash: \`${command}\`` })
    .meta({ description, hash: true });
}
