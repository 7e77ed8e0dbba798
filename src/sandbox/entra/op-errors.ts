/**
 * Errors of the sandbox's run-time operations (ops.ts), for the admin API/CLI built on them. Their
 * texts are catalogue entries (src/errors/entries/sandbox.ts, sandboxEntraErrors): the catalogue
 * imports nothing of the sandbox, the sandbox takes its texts from the catalogue.
 */
import { format, type Lang } from '../../i18n/index.ts';
import { sandboxEntraErrors } from '../../errors/entries/sandbox.ts';

export { sandboxEntraErrors };

export type SandboxOpCode = keyof typeof sandboxEntraErrors;

export class SandboxOpError extends Error {
  readonly code: SandboxOpCode;
  readonly params: Record<string, string>;

  constructor(code: SandboxOpCode, params: Record<string, string | number> = {}) {
    const p = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
    super(`${code}: ${format(sandboxEntraErrors[code].cause.en, p)}`);
    this.name = 'SandboxOpError';
    this.code = code;
    this.params = p;
  }

  get http(): number {
    return sandboxEntraErrors[this.code].http;
  }

  explain(lang: Lang): { code: string; title: string; cause: string; fix: string } {
    const e = sandboxEntraErrors[this.code];
    return { code: this.code, title: format(e.title[lang], this.params), cause: format(e.cause[lang], this.params), fix: format(e.fix[lang], this.params) };
  }
}
