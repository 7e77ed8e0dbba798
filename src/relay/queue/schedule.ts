/**
 * Retry schedules in Haraka's notation: delays separated by commas, each a number with a unit
 * (s, m, h, d) and an optional repeat count — `1m, 5m*2, 1h*3` waits 1 minute after the first
 * failure, 5 minutes after the second and third, an hour after the fourth to sixth, and bounces at
 * the seventh. `none` (or an empty list) bounces at the first temporary failure.
 */
import { MbError } from '../../errors/index.ts';

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** A schedule longer than this is a typo (`1m*100000`), not a plan. */
const MAX_STEPS = 1_000;

/** The delays in milliseconds; throws MB_RELAY_RETRY_SCHEDULE_INVALID. */
export function parseSchedule(text: string): number[] {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.toLowerCase() === 'none') return [];
  const out: number[] = [];
  for (const part of trimmed.split(',')) {
    const m = /^\s*(\d{1,6})\s*([smhd])\s*(?:\*\s*(\d{1,4}))?\s*$/i.exec(part);
    if (!m) throw invalid(text, `"${part.trim()}" is not <number><s|m|h|d>[*count]`);
    const delay = Number(m[1]) * UNIT_MS[m[2]!.toLowerCase() as keyof typeof UNIT_MS];
    const count = m[3] === undefined ? 1 : Number(m[3]);
    if (delay <= 0 || count <= 0) throw invalid(text, `"${part.trim()}" must be greater than zero`);
    if (out.length + count > MAX_STEPS) throw invalid(text, `more than ${MAX_STEPS} retries`);
    for (let i = 0; i < count; i++) out.push(delay);
  }
  return out;
}

/** Human form of a delay for CLI output: 90000 → "1m30s". */
export function formatDelay(ms: number): string {
  let rest = Math.max(0, Math.round(ms / 1000));
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest || parts.length === 0) parts.push(`${rest}s`);
  return parts.join('');
}

function invalid(schedule: string, detail: string): MbError {
  return new MbError('MB_RELAY_RETRY_SCHEDULE_INVALID', { schedule, detail });
}
