/**
 * The console's one template helper: html`…` escapes every interpolated value unless it is already
 * Html (a fragment built the same way, or raw() for the few trusted constants), and joins arrays.
 * Every page is built from it, so text from the API (a sender, an Exchange reply, a config value)
 * can never become markup.
 */
export class Html {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Markup that is trusted as it is: constants of the console, never data. */
export function raw(s: string): Html {
  return new Html(s);
}

function part(v: unknown): string {
  if (v === undefined || v === null || v === false) return '';
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(part).join('');
  return esc(v);
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return new Html(out);
}
