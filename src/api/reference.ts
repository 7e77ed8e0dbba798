/**
 * The readable API reference at /api/reference: plain HTML rendered on the server from the OpenAPI
 * document (no script, no CDN, nothing fetched at run time), in English or German from
 * Accept-Language or ?lang=. Schemas are shown as their JSON Schema, which is what they are.
 */
import type { Lang } from '../i18n/index.ts';

const T = {
  en: { title: 'mailbridge admin API', intro: 'Machine-readable:', scope: 'Scope', params: 'Parameters', body: 'Request body', responses: 'Answers', audited: 'written to the audit log', required: 'required' },
  de: { title: 'mailbridge Admin-API', intro: 'Maschinenlesbar:', scope: 'Berechtigung', params: 'Parameter', body: 'Anfrageinhalt', responses: 'Antworten', audited: 'wird im Audit-Protokoll festgehalten', required: 'Pflicht' },
} satisfies Record<Lang, Record<string, string>>;

/** German texts of the answers (the document's descriptions are English). */
export const ANSWERS_DE: Record<string, string> = {
  '200': 'Erfolg',
  '201': 'Angelegt',
  '202': 'Angenommen; es geschieht beim nächsten Durchlauf',
  '204': 'Erledigt; kein Inhalt',
  '400': 'Die Anfrage passt nicht zu dieser Beschreibung (MB_API_INVALID) oder die Aktion ist jetzt nicht möglich (der MB-Code sagt, warum)',
  '401': 'Kein oder ein unbekannter API-Schlüssel (MB_API_UNAUTHORIZED)',
  '403': 'Dem Schlüssel fehlt die Berechtigung (MB_API_FORBIDDEN)',
  '404': 'Nicht gefunden oder in diesem Gateway nicht eingerichtet (der MB-Code sagt, was)',
  '409': 'Der Zustand des Objekts erlaubt das nicht (der MB-Code sagt, welcher)',
  '502': 'Ein vorgelagerter Dienst ist fehlgeschlagen (der MB-Code sagt, welcher)',
  '503': 'Ausgelastet: zu viele gleichzeitig (der MB-Code sagt, was)',
};

function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

type Json = Record<string, unknown>;

export function referencePage(doc: Json, lang: Lang): string {
  const t = T[lang];
  const info = doc.info as Json;
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const byTag = new Map<string, string[]>();
  for (const [path, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = ((op.tags as string[] | undefined) ?? ['other'])[0]!;
      const id = esc(op.operationId);
      const summary = lang === 'de' ? (op['x-summary-de'] as string) : (op.summary as string);
      const params = ((op.parameters as Json[] | undefined) ?? [])
        .map((p) => `<li><code>${esc(p.name)}</code> (${esc(p.in)}${p.required ? `, ${t.required}` : ''})${p.description ? ` – ${esc(p.description)}` : ''}: <code>${esc(JSON.stringify(p.schema))}</code></li>`)
        .join('');
      const body = op.requestBody ? ((op.requestBody as Json).content as Record<string, Json>)['application/json']?.schema : undefined;
      const responses = Object.entries(op.responses as Record<string, Json>)
        .map(([status, r]) => {
          const schema = (r.content as Record<string, Json> | undefined)?.['application/json']?.schema;
          const text = lang === 'de' ? (ANSWERS_DE[status] ?? r.description) : r.description;
          return `<li><strong>${esc(status)}</strong> ${esc(text)}${schema && !(schema as Json).$ref ? `<pre>${esc(JSON.stringify(schema, null, 2))}</pre>` : ''}</li>`;
        })
        .join('');
      const html = `<section id="${id}" aria-labelledby="${id}-h">
<h3 id="${id}-h"><span class="m m-${esc(method)}">${esc(method.toUpperCase())}</span> <code>${esc(path)}</code></h3>
<p>${esc(summary)}</p>
<p>${t.scope}: <code>${esc(op['x-scope'])}</code>${op['x-audited'] ? `; ${t.audited}` : ''}</p>
${params ? `<h4>${t.params}</h4><ul>${params}</ul>` : ''}
${body ? `<h4>${t.body}</h4><pre>${esc(JSON.stringify(body, null, 2))}</pre>` : ''}
<h4>${t.responses}</h4><ul>${responses}</ul>
</section>`;
      byTag.set(tag, [...(byTag.get(tag) ?? []), html]);
    }
  }
  const nav = [...byTag.keys()].map((tag) => `<li><a href="#tag-${esc(tag)}">${esc(tag)}</a></li>`).join('');
  const sections = [...byTag].map(([tag, ops]) => `<h2 id="tag-${esc(tag)}">${esc(tag)}</h2>\n${ops.join('\n')}`).join('\n');
  return `<!doctype html>
<html lang="${lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(t.title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem;line-height:1.5;color:#1b1b1b}
pre{background:#f4f4f4;padding:.5rem;overflow-x:auto;font-size:.85rem}
section{border-top:1px solid #ccc;padding-top:.5rem}
.m{display:inline-block;min-width:4.5rem;font-family:monospace;padding:0 .3rem;color:#fff;background:#35608f}
.m-post{background:#2b7a3d}.m-delete{background:#a12f2f}
</style></head>
<body>
<header><h1>${esc(t.title)} ${esc(info.version)}</h1><p>${esc(info.description)}</p>
<p>${t.intro} <a href="/api/openapi.json">/api/openapi.json</a> · <a href="?lang=en" hreflang="en">English</a> · <a href="?lang=de" hreflang="de">Deutsch</a></p></header>
<nav aria-label="API"><ul>${nav}</ul></nav>
<main>
${sections}
</main>
</body></html>
`;
}
