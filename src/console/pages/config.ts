/**
 * Configuration: the effective configuration with every secret masked (GET /api/v1/config), and an
 * editor whose text is validated as it is edited (the script posts it to /api/v1/config/validate
 * and lists each problem at its line with MB code, cause and fix, and marks the line) and applied
 * with POST /api/v1/config/apply when valid. The editor starts from mailbridge.yaml as written
 * (GET /api/v1/config/file: comments kept, no defaults added), each secret and password hash shown
 * as ********: secrets never reach the browser. Left as it is, a mask keeps the stored value; a new
 * secret typed over it is sealed by the gateway before it is written. After an apply the editor
 * loads the file again, so a typed secret does not stay on the page.
 */
import { stringify } from 'yaml';
import type { Text } from '../../i18n/index.ts';
import { html, type Html } from '../html.ts';
import { layout, problem, scriptTexts } from '../layout.ts';
import { need, type Ctx } from '../request.ts';
import texts from './config.texts.json' with { type: 'json' };

const T = texts.page satisfies Record<string, Text>;

/** Texts the editor's script shows (it builds the problem list itself). */
const SCRIPT = texts.script;

export async function configPage(ctx: Ctx): Promise<Html> {
  const { lang } = ctx;
  const c = need(await ctx.api<{ config: Record<string, unknown>; secrets: Array<{ path: string; encrypted: boolean; unreadable?: string }> }>('/api/v1/config'));
  const f = need(await ctx.api<{ path: string; text: string }>('/api/v1/config/file'));
  let body: Html;
  if (!c.body) body = problem(c.error!, lang, 3);
  else {
    const text = stringify(c.body.config, { lineWidth: 0 });
    // A reader sees the effective configuration; the file (and editing it) is the admin's.
    const editor = f.body
      ? html`<form id="config-form" class="editor" novalidate>
<label for="config-editor">${T.editor[lang]}</label> <code id="config-path">${f.body.path}</code>
<p id="config-hint" class="hint">${T.editorHint[lang]}</p>
<div class="editor-wrap">
<pre class="gutter" id="config-gutter" aria-hidden="true"></pre>
<textarea id="config-editor" name="yaml" rows="24" spellcheck="false" autocapitalize="off" aria-describedby="config-hint config-result" data-validate="/api/v1/config/validate" data-file="/api/v1/config/file">${f.body.text}</textarea>
</div>
<div id="config-result" aria-live="polite"><h3>${T.problems[lang]}</h3><p id="config-summary"></p><ol id="config-problems" class="config-problems"></ol></div>
<p><button type="submit" id="config-apply">${T.apply[lang]}</button></p>
</form>`
      : problem(f.error!, lang, 3);
    body = html`<section aria-labelledby="h-effective">
<h2 id="h-effective">${T.effective[lang]}</h2>
<pre class="config" tabindex="0" aria-labelledby="h-effective">${text}</pre>
<h3>${T.secrets[lang]}</h3>
<ul>${c.body.secrets.map((s) => html`<li><code>${s.path}</code>: ${s.encrypted ? T.encrypted[lang] : T.plain[lang]}${s.unreadable ? html` &ndash; ${s.unreadable}` : ''}</li>`)}</ul>
</section>
<section aria-labelledby="h-edit">
<h2 id="h-edit">${T.edit[lang]}</h2>
${editor}
</section>`;
  }
  return layout({ lang, person: ctx.person, page: 'config', title: T.title[lang], path: ctx.path, body, data: { texts: scriptTexts(SCRIPT, lang), lang } });
}
