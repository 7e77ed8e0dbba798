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

const T = {
  title: { en: 'Setup', de: 'Einrichtung' },
  intro: {
    en: 'Creates the app registration of a connection in Entra ID, gives it the permissions mailbridge needs, writes the Exchange script to run and then checks everything.',
    de: 'Legt die App-Registrierung einer Verbindung in Entra ID an, gibt ihr die Berechtigungen, die mailbridge braucht, erstellt das auszuführende Exchange-Skript und prüft danach alles.',
  },
  connection: { en: 'Connection', de: 'Verbindung' },
  start: { en: 'Start setup', de: 'Einrichtung starten' },
  check: { en: 'Run the checks only', de: 'Nur die Prüfungen ausführen' },
  none: { en: 'No connection is configured: add one under connections: first.', de: 'Es ist keine Verbindung eingerichtet: legen Sie zuerst eine unter connections: an.' },
  steps: { en: 'Steps', de: 'Schritte' },
} satisfies Record<string, Text>;

const STEPS = {
  signin: { en: 'Sign in as an Entra ID admin', de: 'Als Entra-ID-Administrator anmelden' },
  creating: { en: 'App registration created', de: 'App-Registrierung angelegt' },
  script: { en: 'Run the Exchange script', de: 'Das Exchange-Skript ausführen' },
  checking: { en: 'Checks', de: 'Prüfungen' },
} satisfies Record<string, Text>;

/** Texts the wizard's script shows. */
const SCRIPT = {
  open: { en: 'Open {uri} and enter the code', de: 'Öffnen Sie {uri} und geben Sie den Code ein' },
  waiting: { en: 'Waiting…', de: 'Warten…' },
  done: { en: 'Done', de: 'Erledigt' },
  current: { en: 'In progress', de: 'Läuft' },
  pending: { en: 'Not yet', de: 'Noch nicht' },
  failed: { en: 'Failed', de: 'Fehlgeschlagen' },
  appId: { en: 'Application (client) ID: {appId}', de: 'Anwendungs-ID (Client): {appId}' },
  scriptHint: {
    en: 'Run it in PowerShell as an Exchange admin (Connect-ExchangeOnline first). The checks go on by themselves.',
    de: 'Führen Sie es in PowerShell als Exchange-Administrator aus (zuvor Connect-ExchangeOnline). Die Prüfungen laufen danach von selbst weiter.',
  },
  ok: { en: 'OK', de: 'OK' },
  warn: { en: 'Warning', de: 'Warnung' },
  fail: { en: 'Failing', de: 'Gestört' },
  allGreen: { en: 'Setup finished: every check is green.', de: 'Einrichtung abgeschlossen: alle Prüfungen sind grün.' },
  finishedWith: { en: 'Setup finished with problems: see the red checks.', de: 'Einrichtung mit Problemen beendet: siehe die roten Prüfungen.' },
  step: { en: 'Step {n} of {total}: {title}', de: 'Schritt {n} von {total}: {title}' },
} satisfies Record<string, Text>;

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
