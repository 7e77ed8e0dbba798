/**
 * The console's read-mostly pages: connectors with their folders and quarantined messages (and the
 * button that asks for them to be delivered again), watchers per group and listener against each
 * listener's capacity, notification subscriptions, and the audit log of changes. Each reads the
 * API route of the same name.
 */
import { textsOf } from '../../i18n/index.ts';
import { html, type Html } from '../html.ts';
import { layout, problem, refused, when } from '../layout.ts';
import { need, type ApiError, type Ctx } from '../request.ts';
import texts from './lists.texts.json' with { type: 'json' };


const tx = textsOf(texts);
const slug = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');

/** Each page here: one API answer rendered, or why the API refused it, under the page's title. */
async function listPage<D>(ctx: Ctx, page: 'connectors' | 'watchers' | 'subscriptions' | 'audit', url: string, topics: string[], render: (data: D) => Html | Promise<Html>): Promise<Html> {
  const { lang } = ctx;
  const a = need(await ctx.api<D>(url));
  const body = a.body ? await render(a.body) : refused(a, lang);
  return layout({ lang, person: ctx.person, page, title: tx(page, lang), path: ctx.path, body, topics });
}

type Connectors = { connectors: Array<{ name: string; connection: string; source: string; destination: string; folders: Array<{ mailbox: string; folder: string; delivered: number; rejected: number; inFlight: number; updatedAt: string }> }> };
type Quarantine = { messages: Array<{ mailbox: string; folder: string; item: string; key: string; at: string; error?: ApiError }> };

export async function connectorsPage(ctx: Ctx): Promise<Html> {
  const { lang } = ctx;
  return listPage<Connectors>(ctx, 'connectors', '/api/v1/connectors', ['connector', 'audit'], async (c) => {
    if (c.connectors.length === 0) return html`<p>${tx('none', lang)}</p>`;
    const parts: Html[] = [];
    for (const x of c.connectors) {
      const rejected = x.folders.reduce((n, f) => n + f.rejected, 0);
      const q = rejected > 0 ? need(await ctx.api<Quarantine>(`/api/v1/connectors/${encodeURIComponent(x.name)}/quarantine`)) : undefined;
      parts.push(html`<section aria-labelledby="h-c-${slug(x.name)}" id="connector-${slug(x.name)}" data-live-region>
<h2 id="h-c-${slug(x.name)}">${tx('connectorHead', lang, { name: x.name, source: x.source, destination: x.destination, connection: x.connection })}</h2>
${
  x.folders.length === 0
    ? html`<p>${tx('none', lang)}</p>`
    : html`<div class="table-wrap" tabindex="0"><table>
<thead><tr><th scope="col">${tx('mailbox', lang)}</th><th scope="col">${tx('folder', lang)}</th><th scope="col">${tx('delivered', lang)}</th><th scope="col">${tx('quarantined', lang)}</th><th scope="col">${tx('inFlight', lang)}</th><th scope="col">${tx('updated', lang)}</th></tr></thead>
<tbody>${x.folders.map((f) => html`<tr><th scope="row">${f.mailbox}</th><td>${f.folder}</td><td>${f.delivered}</td><td>${f.rejected}</td><td>${f.inFlight}</td><td>${when(f.updatedAt, lang)}</td></tr>`)}</tbody>
</table></div>`
}
${
  q?.body
    ? html`<h3>${tx('quarantine', lang, { name: x.name })}</h3>
<div class="table-wrap" tabindex="0"><table>
<thead><tr><th scope="col">${tx('key', lang)}</th><th scope="col">${tx('mailbox', lang)}</th><th scope="col">${tx('folder', lang)}</th><th scope="col">${tx('at', lang)}</th><th scope="col">${tx('error', lang)}</th></tr></thead>
<tbody>${q.body.messages.map((m) => html`<tr><th scope="row">${m.key}</th><td>${m.mailbox}</td><td>${m.folder}</td><td>${when(m.at, lang)}</td><td>${m.error ? problem(m.error, lang) : '–'}</td></tr>`)}</tbody>
</table></div>
<p><button type="button" data-action="retry-rejected" data-method="POST" data-url="/api/v1/connectors/${encodeURIComponent(x.name)}/retry-rejected">${tx('retryRejected', lang)}</button></p>`
    : q?.error
      ? problem(q.error, lang, 3)
      : ''
}
</section>`);
    }
    return html`${parts}`;
  });
}

type Watchers = {
  running: boolean;
  groups: Array<{ group: string; kind: string; mailboxes: number; listeners: Array<{ name: string; capacity: number; mailboxes: number; states: Record<string, number> }> }>;
  attention: Array<{ group: string; mailbox: string; listener: string; state: string; since: string; error?: { code: string; message: string } }>;
  problems: Array<{ at: string; group: string; listener: string; mailbox?: string; code: string; message: string }>;
  unwatchedSubscriptions: Array<{ id: string; error: ApiError }>;
};

const statesText = (s: Record<string, number>) =>
  Object.entries(s)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');

export async function watchersPage(ctx: Ctx): Promise<Html> {
  const { lang } = ctx;
  return listPage<Watchers>(ctx, 'watchers', '/api/v1/watchers', ['watcher'], (x) =>
    html`${!x.running ? html`<p>${tx('notRunning', lang)}</p>` : ''}
${x.groups.map(
  (g) => html`<section aria-labelledby="h-g-${slug(g.group)}" id="group-${slug(g.group)}" data-live-region>
<h2 id="h-g-${slug(g.group)}">${tx('group', lang, { group: g.group, kind: g.kind, mailboxes: g.mailboxes })}</h2>
<div class="table-wrap" tabindex="0"><table>
<thead><tr><th scope="col">${tx('listener', lang)}</th><th scope="col">${tx('load', lang)}</th><th scope="col">${tx('states', lang)}</th></tr></thead>
<tbody>${g.listeners.map(
    (l) => html`<tr><th scope="row">${l.name}</th><td><meter min="0" max="${l.capacity}" value="${l.mailboxes}" high="${Math.floor(l.capacity * 0.9)}" aria-label="${l.name}: ${l.mailboxes} / ${l.capacity}"></meter> ${l.mailboxes} / ${l.capacity}</td><td>${statesText(l.states)}</td></tr>`,
  )}</tbody>
</table></div>
</section>`,
)}
<section aria-labelledby="h-attention" id="watch-attention" data-live-region>
<h2 id="h-attention">${tx('attention', lang)}</h2>
${
  x.attention.length === 0
    ? html`<p>${tx('none', lang)}</p>`
    : html`<div class="table-wrap" tabindex="0"><table>
<thead><tr><th scope="col">${tx('mailbox', lang)}</th><th scope="col">${tx('listener', lang)}</th><th scope="col">${tx('state', lang)}</th><th scope="col">${tx('since', lang)}</th><th scope="col">${tx('error', lang)}</th></tr></thead>
<tbody>${x.attention.map((a) => html`<tr><th scope="row">${a.mailbox}</th><td>${a.listener}</td><td>${a.state}</td><td>${when(a.since, lang)}</td><td>${a.error ? html`<code>${a.error.code}</code> ${a.error.message} <a href="/docs/${lang}/errors/${a.error.code}">${a.error.code}</a>` : '–'}</td></tr>`)}</tbody>
</table></div>`
}
${x.unwatchedSubscriptions.map((s) => problem(s.error, lang, 3))}
</section>
<section aria-labelledby="h-problems" id="watch-problems" data-live-region>
<h2 id="h-problems">${tx('problems', lang)}</h2>
${x.problems.length === 0 ? html`<p>${tx('none', lang)}</p>` : html`<ul>${x.problems.slice(-20).map((p) => html`<li><time datetime="${p.at}">${when(p.at, lang)}</time> ${p.group}/${p.listener}${p.mailbox ? ` ${p.mailbox}` : ''}: <code>${p.code}</code> ${p.message}</li>`)}</ul>`}
</section>`,
  );
}

type Subscriptions = { subscriptions: Array<{ id: string; mailboxes: string[]; events: string[]; sink: { kind: string }; state: string; createdAt: string; label?: string }> };

export async function subscriptionsPage(ctx: Ctx): Promise<Html> {
  const { lang } = ctx;
  return listPage<Subscriptions>(ctx, 'subscriptions', '/api/v1/subscriptions', ['audit'], (s) =>
    s.subscriptions.length === 0
      ? html`<p>${tx('none', lang)}</p>`
      : html`<p><label for="sub-search">${tx('search', lang)}</label> <input id="sub-search" type="search" data-filter="sub-table"></p>
<div class="table-wrap" tabindex="0" id="subscriptions" data-live-region><table id="sub-table">
<thead><tr><th scope="col">${tx('id', lang)}</th><th scope="col">${tx('label', lang)}</th><th scope="col">${tx('mailboxes', lang)}</th><th scope="col">${tx('sink', lang)}</th><th scope="col">${tx('events', lang)}</th><th scope="col">${tx('state', lang)}</th><th scope="col">${tx('created', lang)}</th></tr></thead>
<tbody>${s.subscriptions.map(
      (x) =>
        html`<tr><th scope="row">${x.id}</th><td>${x.label ?? '–'}</td><td>${x.mailboxes.slice(0, 5).join(', ')}${x.mailboxes.length > 5 ? ` (+${x.mailboxes.length - 5})` : ''}</td><td>${x.sink.kind}</td><td>${x.events.length ? x.events.join(', ') : tx('all', lang)}</td><td>${x.state}</td><td>${when(x.createdAt, lang)}</td></tr>`,
    )}</tbody>
</table></div>`,
  );
}

type Audit = { entries: Array<{ at: string; who: string; action: string; target?: string; status: number; code?: string }> };

export async function auditPage(ctx: Ctx, query: { who?: string }): Promise<Html> {
  const { lang } = ctx;
  const who = query.who && /^[\w:.@-]{1,80}$/.test(query.who) ? query.who : undefined;
  return listPage<Audit>(ctx, 'audit', `/api/v1/audit?limit=200${who ? `&who=${encodeURIComponent(who)}` : ''}`, ['audit'], (a) =>
    html`<form class="filters" method="get" action="/console/audit"><label for="audit-who">${tx('filterWho', lang)}</label> <input id="audit-who" name="who" value="${who ?? ''}"> <button type="submit">${tx('show', lang)}</button></form>
<section aria-labelledby="h-entries" id="audit-entries" data-live-region>
<h2 id="h-entries" class="visually-hidden">${tx('audit', lang)}</h2>
${
  a.entries.length === 0
    ? html`<p>${tx('none', lang)}</p>`
    : html`<div class="table-wrap" tabindex="0"><table id="audit-table">
<thead><tr><th scope="col">${tx('at', lang)}</th><th scope="col">${tx('who', lang)}</th><th scope="col">${tx('action', lang)}</th><th scope="col">${tx('target', lang)}</th><th scope="col">${tx('status', lang)}</th><th scope="col">${tx('code', lang)}</th></tr></thead>
<tbody>${a.entries.map((e) => html`<tr data-action="${e.action}" data-target="${e.target ?? ''}"><th scope="row"><time datetime="${e.at}">${when(e.at, lang)}</time></th><td>${e.who}</td><td><code>${e.action}</code></td><td>${e.target ?? '–'}</td><td>${e.status}</td><td>${e.code ? html`<a href="/docs/${lang}/errors/${e.code}">${e.code}</a>` : '–'}</td></tr>`)}</tbody>
</table></div>`
}
</section>`,
  );
}
