/**
 * Writing one value into mailbridge.yaml without disturbing the rest of it: comments, blank lines,
 * quoting, indentation, line endings.
 *
 * Strategy, most faithful first; every candidate text is parsed again and must give exactly the
 * intended data, else the next strategy is used:
 *   1. the key exists with a plain or quoted value: replace just those characters;
 *   2. its section exists as an indented block: insert the missing lines after the section's last
 *      entry, indented like its siblings;
 *   3. otherwise the yaml package's Document API: set the value on the parsed document (which
 *      keeps comments) and print it with the file's indentation.
 * Limits: in case 3 the yaml package normalises spacing (e.g. before end-of-line comments).
 */
import { isDeepStrictEqual } from 'node:util';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, Scalar, visit, type Document, type Node, type YAMLMap } from 'yaml';
import { MbError } from '../errors/index.ts';

export interface YamlSyntaxError {
  line: number;
  column: number;
  message: string;
}

/** Parse for editing; syntax errors are returned with their position, messages without source text. */
export function parseForEdit(text: string): { doc: Document.Parsed; lines: LineCounter; errors: YamlSyntaxError[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, keepSourceTokens: false });
  const errors = doc.errors.map((e) => {
    const pos = lines.linePos(e.code === 'MISSING_CHAR' ? (openingQuote(doc, e.pos[0]) ?? e.pos[0]) : e.pos[0]);
    return { line: pos.line, column: pos.col, message: plainMessage(e.message) };
  });
  return { doc, lines, errors };
}

/**
 * An unclosed quote is reported where the file ends; the admin needs the place where it opens,
 * which is the start of the quoted scalar that runs up to the error.
 */
function openingQuote(doc: Document.Parsed, errorAt: number): number | undefined {
  let found: number | undefined;
  visit(doc, {
    Scalar(_key, node) {
      const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
      if (quoted && node.range && node.range[1] >= errorAt && node.range[0] < errorAt) found = node.range[0];
    },
  });
  return found;
}

/** The yaml package's message without a source excerpt (which could show a plain-text secret). */
export function plainMessage(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '').trim();
}

/** `text` with `value` set at `path` (creating sections as needed). Throws MB_CONFIG_YAML_SYNTAX on broken YAML. */
export function setInYaml(text: string, path: string[], value: string, file = 'mailbridge.yaml'): string {
  const { doc, lines, errors } = parseForEdit(text);
  if (errors.length) {
    const e = errors[0]!;
    throw new MbError('MB_CONFIG_YAML_SYNTAX', { file, line: e.line, column: e.column, detail: e.message });
  }
  const before: unknown = doc.toJS() ?? {};
  const expected = structuredClone(isObject(before) ? before : {});
  let cur: Record<string, unknown> = expected;
  for (const k of path.slice(0, -1)) {
    // Lists are entered by index (listeners.0.password); anything else becomes a section.
    if (!isObject(cur[k]) && !Array.isArray(cur[k])) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;

  const accept = (candidate: string | undefined): candidate is string => {
    if (candidate === undefined) return false;
    const check = parseDocument(candidate);
    return check.errors.length === 0 && isDeepStrictEqual(check.toJS(), expected);
  };
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const spliced = replaceScalar(text, doc, path, value) ?? insertLines(text, doc, lines, path, value, eol);
  if (accept(spliced)) return spliced;
  const printed = viaDocument(text, doc, path, value);
  if (accept(printed)) return printed;
  throw new MbError('MB_CONFIG_WRITE_FAILED', { path: file, detail: 'the YAML could not be updated safely' });
}

/**
 * The written form (quotes and all) of the single-line scalar at `path` in `from`, put in place of
 * the single-line scalar at `path` in `text`: a value kept from the file stays byte for byte as the
 * file wrote it. Undefined when either is no such scalar (a block scalar, a missing key) or the
 * result would not read back as `from`'s value there; setInYaml is the fallback.
 */
export function copyScalar(text: string, from: string, path: string[]): string | undefined {
  const source = parseForEdit(from).doc.getIn(path, true) as Node | undefined;
  const target = parseForEdit(text).doc.getIn(path, true) as Node | undefined;
  const flow = (n: Node | undefined): n is Scalar => isScalar(n) && !!n.range && (n.type === Scalar.PLAIN || n.type === Scalar.QUOTE_DOUBLE || n.type === Scalar.QUOTE_SINGLE);
  if (!flow(source) || !flow(target)) return undefined;
  const out = text.slice(0, target.range![0]) + from.slice(source.range![0], source.range![1]) + text.slice(target.range![1]);
  const check = parseDocument(out);
  return check.errors.length === 0 && isDeepStrictEqual(check.getIn(path), source.value) ? out : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A scalar in the file's style: plain when that reads back as the same text, else double-quoted. */
function render(value: string): string {
  const plain = /^[A-Za-z0-9_][A-Za-z0-9_.:/+=-]*$/.test(value) && !/:$/.test(value);
  if (plain) {
    const back = parseDocument(`k: ${value}`).toJS() as { k: unknown };
    if (back.k === value) return value;
  }
  return JSON.stringify(value);
}

function replaceScalar(text: string, doc: Document.Parsed, path: string[], value: string): string | undefined {
  const node = doc.getIn(path, true) as Node | undefined;
  if (!isScalar(node) || !node.range) return undefined;
  if (node.type !== Scalar.PLAIN && node.type !== Scalar.QUOTE_DOUBLE && node.type !== Scalar.QUOTE_SINGLE) return undefined;
  const [start, end] = node.range;
  return text.slice(0, start) + render(value) + text.slice(end);
}

function insertLines(text: string, doc: Document.Parsed, lines: LineCounter, path: string[], value: string, eol: string): string | undefined {
  const step = indentUnit(text) ?? 2;
  const entry = (k: string, i: number, last: boolean, indent: number) =>
    `${' '.repeat(indent + i * step)}${render(k)}:${last ? ` ${render(value)}` : ''}`;
  // The deepest existing section on the path, which must be a block map with entries.
  let depth = 0;
  let map: YAMLMap | undefined = isMap(doc.contents) ? doc.contents : undefined;
  while (map && depth < path.length - 1) {
    const pair = map.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === path[depth]);
    if (!pair) break;
    const child = pair.value as Node | null;
    const key = pair.key as Node | null;
    if (isScalar(child) && child.value === null && !child.source && child.range && key?.range) {
      // `empty:` with nothing after it: the section's entries go on the following lines.
      const indent = lines.linePos(key.range[0]).col - 1;
      const rest = path.slice(depth + 1);
      const added = rest.map((k, i) => eol + entry(k, i + 1, i === rest.length - 1, indent)).join('');
      return text.slice(0, child.range[0]).replace(/[ \t]+$/, '') + added + text.slice(child.range[0]);
    }
    if (isSeq(child) && /^\d+$/.test(path[depth + 1] ?? '') && depth + 2 < path.length) {
      // An item of a block list: its entries sit in the item's map.
      const item = child.items[Number(path[depth + 1])] as Node | undefined;
      if (!isMap(item)) return undefined;
      map = item;
      depth += 2;
      continue;
    }
    if (!isMap(child)) return undefined;
    map = child;
    depth++;
  }
  if (!map || map.flow || map.items.length === 0 || !map.range) return undefined;
  if (map.has(path[depth])) return undefined;
  const firstKey = map.items[0]!.key as Node | undefined;
  if (!firstKey?.range) return undefined;
  const indent = lines.linePos(firstKey.range[0]).col - 1;
  // After the line on which the section's last entry ends.
  const endOfSection = map.range[1];
  let at = text.indexOf('\n', Math.max(0, endOfSection - 1));
  let prefix = '';
  if (at < 0) {
    at = text.length;
    prefix = eol;
  } else {
    at += 1;
  }
  const rest = path.slice(depth);
  const added = rest.map((k, i) => entry(k, i, i === rest.length - 1, indent)).join(eol);
  return text.slice(0, at) + prefix + added + eol + text.slice(at);
}

function viaDocument(text: string, doc: Document.Parsed, path: string[], value: string): string {
  if (!isMap(doc.contents)) {
    const old = doc.contents;
    const fresh = doc.createNode({}) as YAMLMap;
    if (isScalar(old)) fresh.comment = old.comment; // an empty file with only comments
    (doc as unknown as Document).contents = fresh;
  }
  // Sections written as an empty key (`empty:`) are null scalars: turn them into maps, keeping their comments.
  for (let i = 1; i < path.length; i++) {
    const node = doc.getIn(path.slice(0, i), true) as Node | undefined;
    if (node !== undefined && !isMap(node) && !isSeq(node)) {
      const fresh = doc.createNode({}) as YAMLMap;
      if (isScalar(node)) {
        fresh.commentBefore = node.commentBefore;
        fresh.comment = node.comment;
      }
      doc.setIn(path.slice(0, i), fresh);
    }
  }
  doc.setIn(path, value);
  return doc.toString({ indent: indentUnit(text) ?? 2, lineWidth: 0 });
}

/** The indentation step the file uses (the smallest indent of a key line), if any. */
function indentUnit(text: string): number | undefined {
  let unit: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^( +)[^\s#-]/.exec(line);
    if (m && (unit === undefined || m[1]!.length < unit)) unit = m[1]!.length;
  }
  return unit;
}
