/**
 * Logging: pino, JSON lines on stderr (or a file), every line scrubbed of secrets before it is
 * written. Redaction sits in the stream, not in call sites, so no log call can forget it; it also
 * masks secret-looking query parameters (the code and state of /oauth/callback in request logs) and
 * the values of secret-named fields at any depth (redact.ts). pino's own `redact` paths did the
 * latter per call by parsing and cloning, one level deep only: the largest allocation per relayed
 * message (a sixth of the relay's heap allocations in a profile of bench/relay).
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { scrubLogLine } from './redact.ts';

export type { Logger } from 'pino';

export interface LogOptions {
  level?: string;
  /** Where lines go; defaults to stderr. Tests pass a collecting stream. */
  destination?: { write(line: string): unknown };
}

export function createLogger(options: LogOptions = {}): Logger {
  const target = options.destination ?? process.stderr;
  const stream: DestinationStream = { write: (line: string) => void target.write(scrubLogLine(line)) };
  return pino(
    {
      level: options.level ?? process.env.MAILBRIDGE_LOG_LEVEL ?? 'info',
      base: { name: 'mailbridge' },
    },
    stream,
  );
}

/** A logger that writes nothing, for library callers and tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
