/**
 * The one secret-field type of mailbridge.yaml. Every password, key and token in the configuration
 * is declared with `secretField(...)`, and everything that handles secrets finds them by its mark
 * (config/schema-walk.ts): `secret set` accepts exactly these paths, `secret list` and `config show`
 * list and mask them, `config check` warns when one is plain text, and the gateway reveals them
 * through the SecretBox. A value is `enc:v1:…` (written by `mailbridge secret set`) or, tolerated
 * with a warning, plain text; it may span lines (PEM keys, JSON service accounts).
 *
 * A leaf: it imports nothing of mailbridge, so every capability's schema (assembled in src/app/schema.ts) can
 * use it without import cycles.
 */
import { z } from 'zod';

/** The note every secret setting's description ends with (translated in docs/de/reference/config.md). */
export const SECRET_HOW = 'secret: set it with `mailbridge secret set <path>` (stored encrypted as enc:v1:…)';

/** A secret setting; `what` says what it is (shown in the JSON Schema and docs/<lang>/reference/config.md). */
export function secretField(what?: string) {
  return z
    .string()
    .min(1)
    .meta({ description: what ? `${what}; ${SECRET_HOW}` : `Secret; ${SECRET_HOW.slice('secret: '.length)}`, secret: true });
}
