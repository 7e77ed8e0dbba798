/**
 * XML for the sandbox EWS: fast-xml-parser does the parsing and the serialising; this module adds
 * what EWS needs on top, namespace resolution. Exchange matches elements by namespace URI, not by
 * prefix (clients send `m:`, `mes:`, default namespaces, …), so a request is parsed with prefixes
 * kept and every element is then resolved against the xmlns declarations in scope. Attributes are
 * kept by their local name (EWS attributes are unqualified), except `xmlns*` which are dropped.
 *
 * Building: elements are written as `el('m:Subscribe', attrs, children)`; the caller declares the
 * prefixes it uses on the outermost element, as Exchange does.
 */
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';

export const NS = {
  soap: 'http://schemas.xmlsoap.org/soap/envelope/',
  soap12: 'http://www.w3.org/2003/05/soap-envelope',
  t: 'http://schemas.microsoft.com/exchange/services/2006/types',
  m: 'http://schemas.microsoft.com/exchange/services/2006/messages',
  e: 'http://schemas.microsoft.com/exchange/services/2006/errors',
  wsa: 'http://www.w3.org/2005/08/addressing',
  a: 'http://schemas.microsoft.com/exchange/2010/Autodiscover',
  xsi: 'http://www.w3.org/2001/XMLSchema-instance',
  xsd: 'http://www.w3.org/2001/XMLSchema',
  poxRequest: 'http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006',
  poxResponse: 'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006',
  poxOutlook: 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a',
} as const;

/** A parsed element with its namespace resolved. */
export interface XNode {
  ns: string;
  name: string;
  attrs: Record<string, string>;
  children: XNode[];
  /** Concatenated text content directly inside this element (trimmed). */
  text: string;
}

export class XmlError extends Error {}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  removeNSPrefix: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  // No DTDs in SOAP (Exchange rejects them too); entities stay the five predefined ones.
  processEntities: true,
});

type Ordered = Record<string, unknown>;

/** Parses a document and returns its root element. Throws XmlError on malformed XML or unbound prefixes. */
export function parseXml(text: string): XNode {
  if (/<!DOCTYPE/i.test(text)) throw new XmlError('DTD is prohibited in this XML document.');
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new XmlError(`${valid.err.msg} Line ${valid.err.line}, position ${valid.err.col}.`);
  const doc = parser.parse(text) as Ordered[];
  const roots = doc.filter((n) => !('#text' in n) && !('#comment' in n));
  if (roots.length !== 1) throw new XmlError('Root element is missing.');
  return resolve(roots[0]!, new Map([['xml', 'http://www.w3.org/XML/1998/namespace']]));
}

function resolve(node: Ordered, scope: Map<string, string>): XNode {
  const tag = Object.keys(node).find((k) => k !== ':@')!;
  const rawAttrs = (node[':@'] ?? {}) as Record<string, string>;
  let inner = scope;
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(rawAttrs)) {
    if (k === 'xmlns' || k.startsWith('xmlns:')) {
      if (inner === scope) inner = new Map(scope);
      inner.set(k === 'xmlns' ? '' : k.slice(6), v);
    }
  }
  for (const [k, v] of Object.entries(rawAttrs)) {
    if (k === 'xmlns' || k.startsWith('xmlns:')) continue;
    const i = k.indexOf(':');
    attrs[i >= 0 ? k.slice(i + 1) : k] = v;
  }
  const i = tag.indexOf(':');
  const prefix = i >= 0 ? tag.slice(0, i) : '';
  const name = i >= 0 ? tag.slice(i + 1) : tag;
  const ns = inner.get(prefix);
  if (ns === undefined && prefix) throw new XmlError(`'${prefix}' is an undeclared prefix.`);
  const children: XNode[] = [];
  let text = '';
  for (const c of (node[tag] ?? []) as Ordered[]) {
    if ('#text' in c) text += String(c['#text']);
    else if (!('#comment' in c)) children.push(resolve(c, inner));
  }
  return { ns: ns ?? '', name, attrs, children, text: text.trim() };
}

export function child(node: XNode | undefined, ns: string, name: string): XNode | undefined {
  return node?.children.find((c) => c.ns === ns && c.name === name);
}

export function kids(node: XNode | undefined, ns: string, name?: string): XNode[] {
  return node ? node.children.filter((c) => c.ns === ns && (name === undefined || c.name === name)) : [];
}

/** Follows a path of [ns, name] steps; undefined when a step is missing. */
export function path(node: XNode | undefined, ...steps: Array<[string, string]>): XNode | undefined {
  let cur = node;
  for (const [ns, name] of steps) cur = child(cur, ns, name);
  return cur;
}

// ---- building ----

/** An element to serialise: tag with prefix, attributes, children (elements or text). */
export interface XEl {
  tag: string;
  attrs?: Record<string, string | number | boolean | undefined>;
  children?: Array<XEl | string | number | undefined | false | null>;
}

export function el(tag: string, attrs?: XEl['attrs'] | XEl['children'], children?: XEl['children']): XEl {
  if (Array.isArray(attrs)) return { tag, children: attrs };
  return { tag, attrs, children };
}

/** An element with only text content. */
export function tx(tag: string, value: string | number | boolean, attrs?: XEl['attrs']): XEl {
  return { tag, attrs, children: [String(value)] };
}

const builder = new XMLBuilder({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', suppressEmptyNode: true });

function toOrdered(e: XEl): Ordered {
  const out: Ordered = {
    [e.tag]: (e.children ?? [])
      .filter((c): c is XEl | string | number => c !== undefined && c !== null && c !== false)
      .map((c) => (typeof c === 'object' ? toOrdered(c) : { '#text': String(c) })),
  };
  const attrs = Object.entries(e.attrs ?? {}).filter(([, v]) => v !== undefined);
  if (attrs.length) out[':@'] = Object.fromEntries(attrs.map(([k, v]) => [k, String(v)]));
  return out;
}

/** Serialises one element (no XML declaration). */
export function buildXml(root: XEl): string {
  return builder.build([toOrdered(root)]) as string;
}

export const XML_DECL = '<?xml version="1.0" encoding="utf-8"?>';
