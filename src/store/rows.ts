/** What every repository does the same way with rows read back, whichever the driver. */

/** Counts per state, every state present (0 where no row has it). */
export function tally<S extends string>(states: readonly S[], rows: Iterable<{ state: S; n: number | string }>): Record<S, number> {
  const out = Object.fromEntries(states.map((s) => [s, 0])) as Record<S, number>;
  for (const r of rows) out[r.state] = Number(r.n);
  return out;
}

/**
 * Copies the columns that are not NULL onto a record's optional fields (a record leaves out what a
 * row holds as NULL, so `deepEqual` and JSON see the same shape from both drivers).
 */
export function withPresent<T extends object>(record: T, optional: { [K in keyof T]?: T[K] | null }): T {
  for (const [k, v] of Object.entries(optional)) if (v !== null && v !== undefined) (record as Record<string, unknown>)[k] = v;
  return record;
}
