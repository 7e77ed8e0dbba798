/**
 * A group of settings that each have a default or may be left out (relay.queue, api.session,
 * connectors.<name>.concurrency, …): an absent group is filled from its fields' defaults, so no
 * default is stated twice, and unknown keys are refused as everywhere in mailbridge.yaml.
 */
import { z } from 'zod';

/** What a field of such a group may be: one with a default, an optional one, or a group itself. */
type Defaulted = z.ZodDefault | z.ZodOptional | z.ZodPrefault;

export function settingsGroup<Shape extends Record<string, Defaulted>>(shape: Shape) {
  // `{}` is a valid input: the type above admits no required field.
  return z.strictObject(shape).prefault({} as z.input<z.ZodObject<Shape, z.core.$strict>>);
}
