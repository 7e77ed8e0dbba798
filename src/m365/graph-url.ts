/**
 * The one notion of a Graph base URL: the service root with its version, e.g.
 * https://graph.microsoft.com/v1.0. Every setting that names Graph (a relay route's graph.url, a
 * connector source's baseUrl, a Graph watcher's baseUrl) accepts the root with or without /v1.0,
 * since admins copy both forms (the sandbox prints Graph's URL with /v1.0); mailbridge then appends
 * resource paths to the normalised form only, so …/v1.0/v1.0/… cannot happen.
 *
 * Refused (config check reports MB_CONFIG_BAD_GRAPH_URL): another scheme than https (http only for
 * loopback test servers), user:password in the URL, a query or fragment, another version (beta: its
 * behaviour is not what the capabilities were built against), a version segment anywhere but at
 * the end, or a resource path (…/users/x). A path prefix before the version is allowed: a reverse
 * proxy may publish Graph under /graph.
 */
import { z } from 'zod';

export const GRAPH_VERSION = 'v1.0';

/** Why `raw` is not a usable Graph base URL, or undefined when it is. */
export function graphUrlProblem(raw: string): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'not a URL';
  }
  const loopback = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i.test(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) return `${u.protocol.replace(/:$/, '')} instead of https`;
  if (u.username || u.password) return 'user name or password in the URL';
  if (u.search || u.hash) return 'a query or fragment';
  const segments = u.pathname.split('/').filter(Boolean);
  const last = segments[segments.length - 1];
  const prefix = last === GRAPH_VERSION ? segments.slice(0, -1) : segments;
  const resource = prefix.find((s) => /^(users|me|groups|subscriptions|sites|\$batch)$/i.test(s));
  if (resource) return `a resource path (/${resource}) after the service root`;
  const version = prefix.find((s) => /^(v\d+(\.\d+)?|beta)$/i.test(s));
  if (version) return version === GRAPH_VERSION ? `${GRAPH_VERSION} more than once` : `version ${version} (mailbridge speaks ${GRAPH_VERSION})`;
  return undefined;
}

/**
 * The normalised base URL (with /v1.0, no trailing slash) for a configured value, else the cloud's
 * Graph host. Throws for a value graphUrlProblem refuses (config validation catches it first).
 */
export function graphBaseUrl(configured: string | undefined, graphHost = 'graph.microsoft.com'): string {
  if (configured === undefined) return `https://${graphHost}/${GRAPH_VERSION}`;
  const problem = graphUrlProblem(configured);
  if (problem) throw new Error(`${configured}: not a Graph base URL (${problem})`);
  const u = new URL(configured);
  const path = u.pathname.replace(/\/+$/, '');
  const withVersion = path.endsWith(`/${GRAPH_VERSION}`) ? path : `${path}/${GRAPH_VERSION}`;
  return `${u.origin}${withVersion}`;
}

/** The config field for a Graph base URL, the same in every capability's schema. */
export function graphUrlField(description: string) {
  return z
    .string()
    .superRefine((v, ctx) => {
      const problem = graphUrlProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem, params: { mbCode: 'MB_CONFIG_BAD_GRAPH_URL', mbParams: { found: v, detail: problem } } });
    })
    .optional()
    .meta({ description: `${description} Graph's service root, with or without /${GRAPH_VERSION} (e.g. https://graph.microsoft.com); default: the connection's cloud` });
}
