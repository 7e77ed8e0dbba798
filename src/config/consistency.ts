/**
 * Checks across a configuration that know no section by name, so that `config check` fails every
 * configuration `serve` would fail with (each an error with its code and fix):
 *  - every `proxy` setting an http:// or https:// URL (a bare host:port parses as a URL scheme);
 *  - no two listeners on the same address and port (the composition root names the listeners).
 * The checks of a capability's own section live with the capability (e.g. identity/check.ts).
 */
import { makeProblem, type ConfigProblem, type Locate } from './problems.ts';

/** A listening socket the configuration asks for, with the setting that names it. */
export interface ConfiguredListener {
  path: string;
  at: Array<string | number>;
  host: string;
  port: number;
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);
const normalHost = (h: string) => (h === 'localhost' ? '127.0.0.1' : h.replace(/^\[|\]$/g, ''));

function overlaps(a: ConfiguredListener, b: ConfiguredListener): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  const x = normalHost(a.host);
  const y = normalHost(b.host);
  return x === y || WILDCARD.has(x) || WILDCARD.has(y);
}

/** Every `proxy` string in the configuration, wherever a section has one. */
function proxies(value: unknown, at: Array<string | number> = []): Array<{ at: Array<string | number>; value: string }> {
  if (Array.isArray(value)) return value.flatMap((v, i) => proxies(v, [...at, i]));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => (k === 'proxy' && typeof v === 'string' ? [{ at: [...at, k], value: v }] : proxies(v, [...at, k])));
}

const problem = (code: Parameters<typeof makeProblem>[1], at: Array<string | number>, params: Record<string, string | number>, locate: Locate): ConfigProblem =>
  makeProblem('error', code, at.join('.'), { field: at.join('.'), ...params }, locate(at));

/** A `proxy` anywhere that is not an http:// or https:// URL. */
export function proxyProblems(config: unknown, locate: Locate): ConfigProblem[] {
  return proxies(config)
    .filter((p) => !/^https?:\/\/[^/]/i.test(p.value))
    .map((p) => problem('MB_CONFIG_PROXY_SCHEME', p.at, { found: JSON.stringify(p.value.replace(/\/\/[^@/]*@/, '//…@')) }, locate));
}

/** Each listener that takes an address and port an earlier one already has. */
export function listenerClashes(listeners: readonly ConfiguredListener[], locate: Locate): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  listeners.forEach((a, i) => {
    const clash = listeners.slice(0, i).find((b) => overlaps(a, b));
    if (clash) out.push(problem('MB_CONFIG_PORT_TWICE', a.at, { other: clash.path, host: a.host, port: a.port, otherHost: clash.host }, locate));
  });
  return out;
}
