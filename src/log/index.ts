/**
 * Logging: pino, JSON lines on stderr (or a file), every line scrubbed of secrets before it is
 * written. Redaction sits in the stream, not in call sites, so no log call can forget it; it also
 * masks secret-looking query parameters (the code and state of /oauth/callback in request logs).
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
      redact: {
        paths: ['*.clientSecret', '*.password', '*.privateKey', '*.refreshToken', '*.accessToken', '*.token', '*.secret'],
        censor: '********',
      },
    },
    stream,
  );
}

/** A logger that writes nothing, for library callers and tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
