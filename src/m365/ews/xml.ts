/**
 * XML for the EWS watcher: fast-xml-parser parses and serialises; this module only shapes its
 * output into a small element tree and splits the GetStreamingEvents stream into documents.
 *
 * Parsing keys on local names (prefixes dropped): Exchange's responses never use one local name
 * for two different things where the watcher reads them, and servers differ in the prefixes they
 * pick (`s:`/`soap:`, `m:`, `t:`, default namespaces). Order is kept, because the events of one
 * notification must be handled in the order Exchange wrote them.
 *
 * Building: requests are written as `el('m:Subscribe', attrs, children)` trees and serialised by
 * XMLBuilder (which escapes text and attributes); the caller declares the prefixes it uses on the
 * envelope.
 */
import { XMLBuilder, XMLParser } from 'fast-xml-parser';

export const NS = {
  soap: 'http://schemas.xmlsoap.org/soap/envelope/',
  t: 'http://schemas.microsoft.com/exchange/services/2006/types',
  m: 'http://schemas.microsoft.com/exchange/services/2006/messages',
  a: 'http://schemas.microsoft.com/exchange/2010/Autodiscover',
  wsa: 'http://www.w3.org/2005/08/addressing',
  xsi: 'http://www.w3.org/2001/XMLSchema-instance',
  poxRequest: 'http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006',
  poxResponseSchema: 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a',
} as const;

/** A parsed element: local name, attributes by local name, child elements, direct text (trimmed). */
export interface XNode {
  name: string;
  attrs: Record<string, string>;
  children: XNode[];
  text: string;
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  processEntities: true,
});

type Ordered = Record<string, unknown>;

/** The root element of a document; throws on a document without one. */
export function parseXml(text: string): XNode {
  if (/<!DOCTYPE/i.test(text)) throw new Error('XML with a DTD is not accepted');
  const doc = parser.parse(text) as Ordered[];
  const root = doc.find((n) => !('#text' in n) && !('#comment' in n));
  if (!root) throw new Error('no root element');
  return toNode(root);
}

function toNode(node: Ordered): XNode {
  const tag = Object.keys(node).find((k) => k !== ':@')!;
  const children: XNode[] = [];
  let text = '';
  for (const c of (node[tag] ?? []) as Ordered[]) {
    if ('#text' in c) text += String(c['#text']);
    else if (!('#comment' in c)) children.push(toNode(c));
  }
  return { name: tag, attrs: (node[':@'] ?? {}) as Record<string, string>, children, text: text.trim() };
}

export function child(node: XNode | undefined, name: string): XNode | undefined {
  return node?.children.find((c) => c.name === name);
}

export function kids(node: XNode | undefined, name?: string): XNode[] {
  return node ? node.children.filter((c) => name === undefined || c.name === name) : [];
}

/** Follows a path of local names; undefined when a step is missing. */
export function path(node: XNode | undefined, ...names: string[]): XNode | undefined {
  let cur = node;
  for (const n of names) cur = child(cur, n);
  return cur;
}

/** Text of a descendant reached by `names`, or undefined. */
export function textAt(node: XNode | undefined, ...names: string[]): string | undefined {
  const n = path(node, ...names);
  return n ? n.text : undefined;
}

/** Depth-first search for the first element called `name`. */
export function find(node: XNode | undefined, name: string): XNode | undefined {
  if (!node) return undefined;
  if (node.name === name) return node;
  for (const c of node.children) {
    const hit = find(c, name);
    if (hit) return hit;
  }
  return undefined;
}

// ---- building ----

export interface XEl {
  tag: string;
  attrs?: Record<string, string | number | boolean | undefined>;
  children?: Array<XEl | string | number | undefined | false | null>;
}

export function el(tag: string, attrs?: XEl['attrs'] | XEl['children'], children?: XEl['children']): XEl {
  if (Array.isArray(attrs)) return { tag, children: attrs };
  return { tag, attrs, children };
}

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

export function buildXml(root: XEl): string {
  return '<?xml version="1.0" encoding="utf-8"?>' + (builder.build([toOrdered(root)]) as string);
}

/**
 * Splits the GetStreamingEvents response (one chunked HTTP response carrying one SOAP envelope
 * after another over time, facts §5.2) into whole documents. Feed text as it arrives; each call
 * returns the envelopes completed so far. The framing is the closing Envelope tag: SOAP forbids
 * anything after it in a document, so the next document starts right behind it.
 */
export class EnvelopeSplitter {
  private buf = '';
  private static readonly END = /<\/(?:[A-Za-z_][\w.-]*:)?Envelope\s*>/g;

  push(text: string): string[] {
    this.buf += text;
    const out: string[] = [];
    let start = 0;
    EnvelopeSplitter.END.lastIndex = 0;
    for (let m = EnvelopeSplitter.END.exec(this.buf); m; m = EnvelopeSplitter.END.exec(this.buf)) {
      const end = m.index + m[0].length;
      const doc = this.buf.slice(start, end).trim();
      if (doc) out.push(doc);
      start = end;
    }
    this.buf = this.buf.slice(start);
    // A server that sends garbage forever must not grow the buffer without bound.
    if (this.buf.length > 16 * 1024 * 1024) throw new Error('streaming response: an envelope larger than 16 MB');
    return out;
  }

  get pending(): number {
    return this.buf.trim().length;
  }
}
