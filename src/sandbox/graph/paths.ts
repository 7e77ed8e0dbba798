/** Graph URL paths as the sandbox reads them (requests and subscription resources alike). */

/**
 * Splits a path into segments, expanding `name('key')` into name, key (with '' unescaped);
 * `bad` makes the error for a segment that is not valid percent-encoding.
 */
export function pathSegments(path: string, bad: (raw: string) => Error): string[] {
  const out: string[] = [];
  for (const raw of path.split('/').filter(Boolean)) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      throw bad(raw);
    }
    const m = /^([^(]+)\('(.*)'\)$/.exec(seg);
    if (m) out.push(m[1] as string, (m[2] as string).replace(/''/g, "'"));
    else out.push(seg);
  }
  return out;
}
