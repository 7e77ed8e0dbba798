/**
 * CLI output: everything a command prints goes through here, so it is scrubbed of secrets and
 * knows the admin's language.
 */
import type { Lang } from '../../i18n/index.ts';
import { scrub } from '../../log/redact.ts';

export interface Output {
  lang: Lang;
  line(text?: string): void;
  error(text: string): void;
  json(value: unknown): void;
  /** True when stdout is a terminal (progress bars, colours); plain lines otherwise. */
  tty: boolean;
}

export interface Writable {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export function createOutput(lang: Lang, stdout: Writable = process.stdout, stderr: Writable = process.stderr): Output {
  return {
    lang,
    tty: Boolean(stdout.isTTY),
    line: (text = '') => void stdout.write(scrub(text) + '\n'),
    error: (text) => void stderr.write(scrub(text) + '\n'),
    json: (value) => void stdout.write(scrub(JSON.stringify(value, null, 2)) + '\n'),
  };
}
