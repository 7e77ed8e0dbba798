/**
 * Renders the configuration reference (docs/<lang>/reference/config.md, written by scripts/docs.ts)
 * from the zod schema, so the documentation cannot drift from what mailbridge accepts.
 *   node scripts/config-reference.ts           print the table
 * test/docs/reference.test.ts fails when the page is stale.
 */
import { z } from 'zod';
import { configSchema } from '../src/app/schema.ts';
import { mdEscape } from './markdown.ts';

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  format?: string;
  secret?: boolean;
};

/** The table; `describe` turns a key's (English) description into the page's language. */
export function renderReference(describe: (text: string) => string = (text) => text): string {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const rows: string[] = ['| key | type | default | meaning |', '|---|---|---|---|'];
  walk(schema, '', rows, describe);
  return rows.join('\n');
}

function walk(node: JsonSchema, path: string, rows: string[], describe: (text: string) => string): void {
  const variants = node.anyOf ?? node.oneOf;
  if (variants && !node.properties) {
    // Discriminated unions (store.driver): list each variant's keys under the same path.
    for (const v of variants) walk(v, path, rows, describe);
    return;
  }
  if (node.properties) {
    for (const [key, child] of Object.entries(node.properties)) {
      const p = path ? `${path}.${key}` : key;
      if (child.properties || typeof child.additionalProperties === 'object' || ((child.anyOf ?? child.oneOf) && !child.enum)) {
        if (child.description) rows.push(row(p, child, describe));
        walk(child, p, rows, describe);
      } else {
        rows.push(row(p, child, describe));
        // A list of objects (relay.listeners, relay.routes, watch listeners): their fields too, as `path[].field`.
        if (child.type === 'array' && child.items && hasFields(child.items)) walk(child.items, `${p}[]`, rows, describe);
      }
    }
    return;
  }
  if (node.additionalProperties && typeof node.additionalProperties === 'object') {
    walk(node.additionalProperties, `${path}.<name>`, rows, describe);
  }
}

function hasFields(node: JsonSchema): boolean {
  return !!node.properties || (node.anyOf ?? node.oneOf ?? []).some(hasFields);
}

/** A default worth showing: scalars, and short lists (the default relay listener); not whole sections. */
function defaultText(value: unknown): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) {
    if (value.length === 0) return '';
    const text = JSON.stringify(value);
    return text.length <= 100 ? `\`${text}\`` : '';
  }
  return typeof value === 'object' ? '' : `\`${String(value)}\``;
}

function row(path: string, node: JsonSchema, describe: (text: string) => string): string {
  const type = node.enum
    ? node.enum.map((v) => `\`${String(v)}\``).join(' \\| ')
    : node.const !== undefined
      ? `\`${String(node.const)}\``
      : node.type === 'array'
        ? `list of ${node.items && hasFields(node.items) ? 'objects (fields below)' : (node.items?.type ?? 'values')}`
        : [node.type ?? 'object'].flat().join(' \\| ') + (node.format ? ` (${node.format})` : '');
  const def = defaultText(node.default);
  return `| \`${path}\` | ${type} | ${def} | ${mdEscape(node.description ? describe(node.description) : '').replace(/\|/g, '\\|')} |`;
}

if (import.meta.main) console.log(renderReference());
