/**
 * The one way mailbridge.yaml declares a numeric setting with a range and a default: the range, the
 * value taken when it is absent, and what it means (for the JSON Schema and
 * docs/<lang>/reference/config.md). Limits, timeouts, concurrencies and retry waits of every
 * capability's section are declared with these; a number without an upper bound or a default (a
 * listener's port) is a plain zod chain.
 */
import { z } from 'zod';

export interface NumberBounds {
  min: number;
  max: number;
  default: number;
}

/** A whole number from `min` to `max`. */
export function intField(bounds: NumberBounds, description?: string) {
  const field = z.int().min(bounds.min).max(bounds.max).default(bounds.default);
  return description === undefined ? field : field.meta({ description });
}

/** A number that may have a fraction (seconds, factors) from `min` to `max`. */
export function numberField(bounds: NumberBounds, description?: string) {
  const field = z.number().min(bounds.min).max(bounds.max).default(bounds.default);
  return description === undefined ? field : field.meta({ description });
}
