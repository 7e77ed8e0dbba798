/**
 * Overview: every connection, relay route, connector and watch group at a glance, each green,
 * amber or red, and for every amber or red the MB code, cause and fix (commands copyable) with the
 * link to the error's page. States come from what the API already reports: a connection's last
 * token request and its credential notices; a route and a connector share their connection's
 * state; a connector with quarantined messages is amber; a watch group with failed mailboxes is
 * red, with mailboxes not watching amber; subscriptions no group serves are amber.
 */
import { explain } from '../../errors/index.ts';
import { textsOf, type Lang } from '../../i18n/index.ts';
import { html, type Html } from '../html.ts';
import { badge, layout, problem, t, type State } from '../layout.ts';
import { need, type ApiError, type Ctx } from '../request.ts';
import texts from './overview.texts.json' with { type: 'json' };


const tx = textsOf(texts);

interface Item {
  name: string;
  state: State;
  detail: string;
  problems: ApiError[];
  /** The connection whose state this item takes (its problems are shown there, once). */
  via?: string;
}

interface Section {
  id: string;
  title: string;
  items: Item[];
  /** Why the section is empty: not configured, or the API refused (shown as a problem). */
  empty?: string;
  error?: ApiError;
}

type Connections = { connections: Array<{ name: string; credential: { expires?: string }; lastToken?: { ok: boolean; at: string; error?: ApiError }; notices: Array<ApiError & { severity: string }> }> };
type Routes = { routes: Array<{ name: string; connection: string; transport: string; upstream: string }> };
type Connectors = { connectors: Array<{ name: string; connection: string; source: string; destination: string; mailboxes: number; folders: Array<{ rejected: number }> }> };
type Quarantine = { messages: Array<{ error?: ApiError }> };
type Watchers = {
  groups: Array<{ group: string; kind: string; mailboxes: number; states: Record<string, number> }>;
  attention: Array<{ group: string; mailbox: string; state: string; error?: { code: string; message: string } }>;
  unwatchedSubscriptions: Array<{ id: string; error: ApiError }>;
};

const worst = (states: State[]): State => (states.includes('red') ? 'red' : states.includes('amber') ? 'amber' : 'green');
const when = (iso: string, lang: Lang) => new Date(iso).toLocaleString(lang === 'de' ? 'de-DE' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' }) + ' UTC';

function unique(problems: ApiError[]): ApiError[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.code}\n${p.cause}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export async function overviewPage(ctx: Ctx): Promise<Html> {
  const { lang } = ctx;
  const [conns, routes, connectors, watchers] = await Promise.all([
    ctx.api<Connections>('/api/v1/connections'),
    ctx.api<Routes>('/api/v1/relay/routes'),
    ctx.api<Connectors>('/api/v1/connectors'),
    ctx.api<Watchers>('/api/v1/watchers'),
  ]);
  const sections: Section[] = [];

  const c = need(conns);
  const byConnection = new Map<string, Item>();
  const connItems = (c.body?.connections ?? []).map((x): Item => {
    const problems: ApiError[] = [];
    let state: State = 'green';
    if (x.lastToken && !x.lastToken.ok && x.lastToken.error) {
      state = 'red';
      problems.push(x.lastToken.error);
    }
    for (const n of x.notices) {
      state = worst([state, n.severity === 'error' ? 'red' : 'amber']);
      problems.push({ code: n.code, title: n.title, cause: n.cause, fix: n.fix });
    }
    const parts = [x.lastToken ? tx('tokenOk', lang, { at: when(x.lastToken.at, lang) }) : tx('noToken', lang)];
    if (x.credential.expires) parts.push(tx('expires', lang, { at: when(x.credential.expires, lang) }));
    const item = { name: x.name, state, detail: parts.join(', '), problems: unique(problems) };
    byConnection.set(x.name, item);
    return item;
  });
  sections.push({ id: 'connections', title: tx('connections', lang), items: connItems, ...(c.error ? { error: c.error } : {}) });

  // A route or connector fares as its connection does; the connection's problems are shown once,
  // under the connection, and the route or connector points there instead of repeating them.
  const inherit = (connection: string): Pick<Item, 'state' | 'problems' | 'via'> => {
    const c = byConnection.get(connection);
    return c && c.state !== 'green' ? { state: c.state, problems: [], via: connection } : { state: 'green', problems: [] };
  };
  const r = need(routes);
  sections.push({
    id: 'routes',
    title: tx('routes', lang),
    items: (r.body?.routes ?? []).map((x) => ({
      name: x.name,
      ...inherit(x.connection),
      detail: tx('via', lang, { transport: x.transport.toUpperCase(), upstream: x.upstream, connection: x.connection }),
    })),
    ...(r.notConfigured ? { empty: t('notConfigured', lang) } : r.error ? { error: r.error } : {}),
  });

  const k = need(connectors);
  const connectorItems: Item[] = [];
  for (const x of k.body?.connectors ?? []) {
    const rejected = x.folders.reduce((n, f) => n + f.rejected, 0);
    const base = inherit(x.connection);
    const problems = [...base.problems];
    let state = base.state;
    if (rejected > 0) {
      state = worst([state, 'amber']);
      const q = need(await ctx.api<Quarantine>(`/api/v1/connectors/${encodeURIComponent(x.name)}/quarantine`));
      problems.push(...(q.body?.messages ?? []).flatMap((m) => (m.error ? [m.error] : [])));
    }
    connectorItems.push({ name: x.name, state, problems: unique(problems), ...(base.via ? { via: base.via } : {}), detail: tx('connectorDetail', lang, { source: x.source, destination: x.destination, mailboxes: x.mailboxes, rejected }) });
  }
  sections.push({ id: 'connectors', title: tx('connectors', lang), items: connectorItems, ...(k.error ? { error: k.error } : {}) });

  const w = need(watchers);
  const groupItems = (w.body?.groups ?? []).map((g): Item => {
    const watching = g.states.watching ?? 0;
    const failed = g.states.failed ?? 0;
    const state: State = failed > 0 ? 'red' : watching < g.mailboxes ? 'amber' : 'green';
    // The watcher keeps its problem as code and English message; title and fix come from the catalogue.
    const problems = (w.body?.attention ?? [])
      .filter((a) => a.group === g.group && a.error)
      .map((a) => {
        const e = explain(a.error!.code, { mailbox: a.mailbox }, lang);
        return { code: e.code, title: e.title, cause: `${a.mailbox}: ${a.error!.message}`, fix: e.fix };
      });
    return { name: g.group, state, problems: unique(problems).slice(0, 5), detail: tx('groupDetail', lang, { kind: g.kind, watching, mailboxes: g.mailboxes }) };
  });
  for (const s of w.body?.unwatchedSubscriptions ?? []) groupItems.push({ name: s.id, state: 'amber', problems: [s.error], detail: '' });
  sections.push({ id: 'watchers', title: tx('groups', lang), items: groupItems, ...(w.error ? { error: w.error } : {}) });

  const all = sections.flatMap((s) => s.items);
  const count = (st: State) => all.filter((i) => i.state === st).length;
  const body = html`<p class="summary" id="summary" data-live-region>${tx('summary', lang, { red: count('red'), amber: count('amber'), green: count('green') })}</p>
${sections.map((s) => sectionView(s, lang))}`;
  return layout({ lang, person: ctx.person, page: 'overview', title: tx('title', lang), path: ctx.path, body, topics: ['queue', 'watcher', 'audit'] });
}

function sectionView(s: Section, lang: Lang): Html {
  return html`<section aria-labelledby="h-${s.id}" id="section-${s.id}" data-live-region>
<h2 id="h-${s.id}">${s.title}</h2>
${s.error ? problem(s.error, lang, 3) : s.items.length === 0 ? html`<p>${s.empty ?? tx('none', lang)}</p>` : html`<ul class="items">${s.items.map((i) => itemView(s.id, i, lang))}</ul>`}
</section>`;
}

function itemView(section: string, i: Item, lang: Lang): Html {
  return html`<li class="item item-${i.state}" data-state="${i.state}" data-name="${i.name}" id="${section}-${anchor(i.name)}">
<p class="item-head">${badge(i.state, lang)} <strong>${i.name}</strong> <span class="detail">${i.detail}</span></p>
${i.via ? html`<p class="via"><a href="#connections-${anchor(i.via)}">${tx(i.state === 'red' ? 'inherited' : 'inheritedAmber', lang, { connection: i.via })}</a></p>` : ''}
${i.state !== 'green' && i.problems.length ? html`<div class="problems">${i.problems.map((p) => problem(p, lang))}</div>` : ''}
</li>`;
}

const anchor = (name: string) => name.replace(/[^A-Za-z0-9_-]/g, '_');
