/**
 * Relay queue: counts per state, the messages filtered by state (a plain GET form, so it works
 * without script) and by any text (the script filters the rows as you type), and per message its
 * envelope, last error with the fix, the trace (accepted, each attempt with Exchange's reply,
 * bounced or delivered) and the buttons retry, hold, release and delete, which call the API's own
 * routes (operate scope; the API refuses and audits what the caller may not do).
 */
import { textsOf, type Lang, type Text } from '../../i18n/index.ts';
import { html, type Html } from '../html.ts';
import { layout, problem, refused, when } from '../layout.ts';
import { need, type ApiError, type Ctx } from '../request.ts';
import texts from './queue.texts.json' with { type: 'json' };

const STATES = ['incoming', 'active', 'deferred', 'held', 'corrupt', 'bounced', 'sent'] as const;

const OUTCOME: Record<string, Text> = texts.outcomes;

const STATE_TEXT: Record<(typeof STATES)[number], Text> = texts.states;

const tx = textsOf(texts.page);

interface Message {
  id: string;
  state: (typeof STATES)[number];
  sender: string;
  recipients: string[];
  mailbox: string;
  attempts: number;
  receivedAt: string;
  nextAttemptAt?: string;
  lastError?: ApiError & { reply?: string };
}

type Step =
  | { type: 'accepted'; at: string; clientIp?: string; relayUser?: string; sender: string; recipients: string[]; size: number }
  | { type: 'attempt'; at: string; attempt: number; outcome: string; reply?: string; error?: ApiError & { reply?: string } }
  | { type: 'admin'; at: string; action: string }
  | { type: 'corrupt'; at: string; error: ApiError };

/** The buttons a message in this state allows (the API refuses the others with 409 anyway). */
export function actionsFor(m: Pick<Message, 'id' | 'state'>, lang: Lang): Html {
  const url = `/api/v1/relay/queue/${m.id}`;
  const b = (action: 'retry' | 'hold' | 'release' | 'delete', method: string, target: string, confirm?: string) =>
    html`<button type="button" data-action="${action}" data-method="${method}" data-url="${target}"${confirm ? html` data-confirm="${confirm}"` : ''} aria-label="${tx(action, lang)} ${m.id}">${tx(action, lang)}</button>`;
  const out: Html[] = [];
  if (m.state === 'incoming' || m.state === 'deferred') out.push(b('retry', 'POST', `${url}/retry`));
  if (m.state === 'incoming' || m.state === 'deferred') out.push(b('hold', 'POST', `${url}/hold`));
  if (m.state === 'held') out.push(b('release', 'POST', `${url}/release`));
  if (m.state !== 'active') out.push(b('delete', 'DELETE', url, tx('confirmDelete', lang, { id: m.id })));
  return html`<span class="actions">${out}</span>`;
}

export async function queuePage(ctx: Ctx, query: { state?: string }): Promise<Html> {
  const { lang } = ctx;
  const chosen = (query.state ?? '').split(',').filter((s): s is (typeof STATES)[number] => (STATES as readonly string[]).includes(s));
  const stateQuery = chosen.length ? `?state=${chosen.join(',')}&limit=500` : '?limit=500';
  const q = need(await ctx.api<{ counts: Record<string, number>; messages: Message[] }>(`/api/v1/relay/queue${stateQuery}`));
  let body: Html;
  if (!q.body) {
    body = refused(q, lang, tx('notConfigured', lang));
  } else {
    const { counts, messages } = q.body;
    body = html`<form class="filters" method="get" action="/console/queue">
<fieldset><legend>${tx('states', lang)}</legend>
${STATES.map((s) => html`<label><input type="checkbox" name="state" value="${s}"${chosen.includes(s) ? html` checked` : ''}> ${STATE_TEXT[s][lang]}</label> `)}
</fieldset>
<button type="submit">${tx('apply', lang)}</button>
</form>
<p><label for="queue-search">${tx('text', lang)}</label> <input id="queue-search" type="search" data-filter="queue-table" aria-describedby="queue-search-hint"> <span id="queue-search-hint" class="hint">${tx('textHint', lang)}</span></p>
<section aria-labelledby="h-counts" id="queue-counts" data-live-region>
<h2 id="h-counts">${tx('counts', lang)}</h2>
<ul class="counts">${STATES.map((s) => html`<li><span class="state state-${s}">${STATE_TEXT[s][lang]}</span> <strong>${counts[s] ?? 0}</strong></li>`)}</ul>
</section>
<section aria-labelledby="h-messages" id="queue-messages" data-live-region>
<h2 id="h-messages">${tx('messages', lang)}</h2>
${
  messages.length === 0
    ? html`<p>${tx('none', lang)}</p>`
    : html`<div class="table-wrap" tabindex="0"><table id="queue-table">
<caption class="visually-hidden">${tx('messages', lang)}</caption>
<thead><tr><th scope="col">${tx('id', lang)}</th><th scope="col">${tx('state', lang)}</th><th scope="col">${tx('sender', lang)}</th><th scope="col">${tx('recipients', lang)}</th><th scope="col">${tx('mailbox', lang)}</th><th scope="col">${tx('attempts', lang)}</th><th scope="col">${tx('next', lang)}</th><th scope="col">${tx('error', lang)}</th><th scope="col">${tx('actions', lang)}</th></tr></thead>
<tbody>${messages.map(
        (m) => html`<tr data-id="${m.id}" data-state="${m.state}">
<th scope="row"><a href="/console/queue/${m.id}">${m.id}</a></th><td><span class="state state-${m.state}">${STATE_TEXT[m.state][lang]}</span></td><td>${m.sender || '<>'}</td><td>${m.recipients.join(', ')}</td><td>${m.mailbox}</td><td>${m.attempts}</td><td>${when(m.nextAttemptAt, lang)}</td><td>${m.lastError ? html`<code>${m.lastError.code}</code> ${m.lastError.title}` : '–'}</td><td>${actionsFor(m, lang)}</td>
</tr>`,
      )}</tbody>
</table></div>`
}
</section>`;
  }
  return layout({ lang, person: ctx.person, page: 'queue', title: tx('title', lang), path: ctx.path, body, topics: ['queue', 'audit'] });
}

export async function messagePage(ctx: Ctx, id: string): Promise<Html> {
  const { lang } = ctx;
  const [m, tr] = await Promise.all([
    ctx.api<Message & { relayUser?: string; clientIp?: string; size: number }>(`/api/v1/relay/queue/${encodeURIComponent(id)}`),
    ctx.api<{ outcome: string; steps: Step[] }>(`/api/v1/relay/queue/${encodeURIComponent(id)}/trace`),
  ]);
  const msg = need(m);
  const trace = need(tr);
  let body: Html;
  if (!msg.body) body = problem(msg.error!, lang, 3);
  else {
    const x = msg.body;
    body = html`<p><a href="/console/queue">${tx('back', lang)}</a></p>
<section aria-labelledby="h-envelope" id="message-envelope" data-live-region>
<h2 id="h-envelope">${tx('message', lang, { id: x.id })}</h2>
<dl class="facts">
<dt>${tx('state', lang)}</dt><dd><span class="state state-${x.state}">${STATE_TEXT[x.state][lang]}</span></dd>
<dt>${tx('sender', lang)}</dt><dd>${x.sender || '<>'}</dd>
<dt>${tx('recipients', lang)}</dt><dd>${x.recipients.join(', ')}</dd>
<dt>${tx('mailbox', lang)}</dt><dd>${x.mailbox}</dd>
<dt>${tx('received', lang)}</dt><dd>${when(x.receivedAt, lang)}</dd>
<dt>${tx('attempts', lang)}</dt><dd>${x.attempts}</dd>
<dt>${tx('next', lang)}</dt><dd>${when(x.nextAttemptAt, lang)}</dd>
</dl>
<p>${actionsFor(x, lang)}</p>
${x.lastError ? html`<h3>${tx('error', lang)}</h3>${problem(x.lastError, lang)}${x.lastError.reply ? html`<p>${tx('reply', lang)}: <code>${x.lastError.reply}</code></p>` : ''}` : ''}
</section>
<section aria-labelledby="h-trace" id="message-trace" data-live-region>
<h2 id="h-trace">${tx('trace', lang)}</h2>
${trace.body ? html`<p>${tx('outcome', lang, { outcome: OUTCOME[trace.body.outcome]?.[lang] ?? trace.body.outcome })}</p><ol class="trace">${trace.body.steps.map((s) => stepView(s, lang))}</ol>` : problem(trace.error!, lang, 3)}
</section>`;
  }
  return layout({ lang, person: ctx.person, page: 'queue', title: tx('message', lang, { id }), path: ctx.path, body, topics: ['queue', 'audit'] });
}

function stepView(s: Step, lang: Lang): Html {
  const at = html`<time datetime="${s.at}">${when(s.at, lang)}</time>`;
  switch (s.type) {
    case 'accepted':
      return html`<li>${at}: ${tx('accepted', lang, { ip: s.clientIp ?? '–', user: s.relayUser ?? '–', sender: s.sender || '<>', recipients: s.recipients.join(', '), size: s.size })}</li>`;
    case 'attempt':
      return html`<li>${at}: ${tx('attempt', lang, { n: s.attempt, outcome: OUTCOME[s.outcome]?.[lang] ?? s.outcome })}${s.reply ? html` &ndash; ${tx('reply', lang)}: <code>${s.reply}</code>` : ''}${s.error ? problem(s.error, lang) : ''}</li>`;
    case 'admin':
      return html`<li>${at}: ${tx('admin', lang, { action: OUTCOME[s.action]?.[lang] ?? s.action })}</li>`;
    case 'corrupt':
      return html`<li>${at}: ${tx('corrupt', lang)}${problem(s.error, lang)}</li>`;
  }
}
