/**
 * Setup wizard: the setup flow of `mailbridge setup` through the API's setup runs (POST
 * /api/v1/setup/runs, then GET /api/v1/setup/runs/{id} as it moves): sign in as an Entra admin
 * with the device code shown here → the app is created → the Exchange script to run, with a copy
 * button → the checks of `mailbridge check`, turning green one by one. The script drives the steps
 * from the run's answers; this module renders the frame and hands it the texts of both languages.
 */
import type { Text } from '../../i18n/index.ts';
import { html, type Html } from '../html.ts';
import { layout, problem, scriptTexts } from '../layout.ts';
import { need, type Ctx } from '../request.ts';
import texts from './setup.texts.json' with { type: 'json' };

const T = texts.page satisfies Record<string, Text>;

const STEPS = texts.steps satisfies Record<string, Text>;

/** Texts the wizard's script shows. */
const SCRIPT = texts.script satisfies Record<string, Text>;

export async function setupPage(ctx: Ctx): Promise<Html> {
  const { lang } = ctx;
  const c = need(await ctx.api<{ connections: Array<{ name: string }> }>('/api/v1/connections'));
  let body: Html;
  if (!c.body) body = problem(c.error!, lang, 3);
  else if (c.body.connections.length === 0) body = html`<p>${T.none[lang]}</p>`;
  else
    body = html`<p>${T.intro[lang]}</p>
<form id="setup-form" class="filters">
<label for="setup-connection">${T.connection[lang]}</label>
<select id="setup-connection" name="connection">${c.body.connections.map((x) => html`<option value="${x.name}">${x.name}</option>`)}</select>
<button type="submit" data-run="setup">${T.start[lang]}</button>
<button type="button" data-run="check">${T.check[lang]}</button>
</form>
<section aria-labelledby="h-steps">
<h2 id="h-steps">${T.steps[lang]}</h2>
<ol class="wizard" id="wizard">
${(Object.keys(STEPS) as Array<keyof typeof STEPS>).map(
  (s) => html`<li id="step-${s}" data-step="${s}" data-status="pending"><h3>${STEPS[s][lang]} <span class="step-status">${SCRIPT.pending[lang]}</span></h3><div class="step-body"></div></li>`,
)}
</ol>
<p id="setup-outcome" role="status"></p>
</section>`;
  return layout({ lang, person: ctx.person, page: 'setup', title: T.title[lang], path: ctx.path, body, data: { texts: scriptTexts(SCRIPT, lang), lang } });
}
