/**
 * `mailbridge config check | schema | show`: validate mailbridge.yaml with a fix for every problem,
 * print the JSON Schema for editors, print the effective configuration with secrets masked.
 */
import { Document, isScalar, type Node } from 'yaml';
import { z } from 'zod';
import { checkConfig, describeLocation, secretSlots, type ConfigProblem } from '../../../app/config.ts';
import { openApp } from '../../../app/open.ts';
import { configSchema } from '../../../app/schema.ts';
import { maskedConfig } from '../../../config/masked.ts';
import { isEncrypted, type KeyedSecretBox } from '../../../config/secrets.ts';
import { MbError } from '../../../errors/index.ts';
import type { Lang } from '../../../i18n/index.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { noMoreArgs, subcommand } from '../args.ts';

export const command = defineCommand({
  name: 'config',
  summary: {
    en: 'Check mailbridge.yaml, print its JSON Schema, show the effective configuration',
    de: 'mailbridge.yaml prüfen, JSON-Schema ausgeben, wirksame Konfiguration anzeigen',
  },
  help: {
    en: `Usage: mailbridge config <check|schema|show> [--json]

  check    Validate mailbridge.yaml together with the MAILBRIDGE__… environment variables.
           Prints every error and warning with its place (path, line or variable), what is
           wrong and the fix; also tries to decrypt every encrypted secret with the key.
           Exit code 1 if there is an error, 0 otherwise (warnings included).
  schema   Print the JSON Schema of mailbridge.yaml, for completion and checks in editors:
             mailbridge config schema > mailbridge.schema.json
           and as the first line of mailbridge.yaml (YAML language server):
             # yaml-language-server: $schema=mailbridge.schema.json
  show     Print the effective configuration: the file, environment overrides applied, defaults
           filled in, every secret masked (a comment says where a value comes from).

{options}

Any value can be overridden by an environment variable: MAILBRIDGE__ followed by the path with
__ between its parts, case-insensitive, e.g. MAILBRIDGE__SERVER__PORT=9000. An empty value removes
the setting, so the default applies.`,
    de: `Aufruf: mailbridge config <check|schema|show> [--json]

  check    Prüft mailbridge.yaml zusammen mit den Umgebungsvariablen MAILBRIDGE__….
           Gibt jeden Fehler und jede Warnung mit Ort (Pfad, Zeile oder Variable), Ursache und
           Behebung aus; versucht außerdem, jedes verschlüsselte Geheimnis mit dem Schlüssel zu
           entschlüsseln. Exit-Code 1 bei einem Fehler, sonst 0 (auch bei Warnungen).
  schema   Gibt das JSON-Schema von mailbridge.yaml aus, für Vervollständigung und Prüfung im Editor:
             mailbridge config schema > mailbridge.schema.json
           und als erste Zeile von mailbridge.yaml (YAML Language Server):
             # yaml-language-server: $schema=mailbridge.schema.json
  show     Zeigt die wirksame Konfiguration: die Datei mit angewendeten Umgebungsvariablen und
           ergänzten Standardwerten, jedes Geheimnis maskiert (ein Kommentar nennt die Herkunft).

{options}

Jeder Wert lässt sich mit einer Umgebungsvariablen überschreiben: MAILBRIDGE__ und der Pfad mit __
zwischen den Teilen, Groß-/Kleinschreibung egal, z. B. MAILBRIDGE__SERVER__PORT=9000. Ein leerer
Wert entfernt die Einstellung, dann gilt der Standardwert.`,
  },
  options: {
    json: { type: 'boolean', help: { en: 'check, show: print JSON instead of text', de: 'check, show: JSON statt Text ausgeben' } },
  },
  async run(ctx) {
    const [given, ...extra] = ctx.args;
    const json = ctx.opts.json;
    const sub = subcommand('config', ctx.lang, given, ['check', 'schema', 'show']);
    noMoreArgs('config', ctx.lang, extra);
    switch (sub) {
      case 'check':
        return check(ctx, json);
      case 'schema':
        ctx.out.line(JSON.stringify(jsonSchema(), null, 2));
        return 0;
      case 'show':
        return show(ctx, json);
    }
  },
});

/** The JSON Schema editors read: draft-07, which the YAML language server supports fully. */
export function jsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-7' }) as Record<string, unknown>;
  return { ...schema, title: 'mailbridge.yaml', description: 'Configuration of mailbridge; `mailbridge config --help` explains how to check it.' };
}

async function check(ctx: CommandContext, json: boolean): Promise<number> {
  const report = await checkConfig(ctx.configPath, ctx.env, { lang: ctx.lang });
  const { errors, warnings } = report;
  if (json) {
    ctx.out.json({ file: report.path ?? null, errors, warnings });
    return errors.length ? 1 : 0;
  }
  const de = ctx.lang === 'de';
  const source = report.path ?? (de ? `${ctx.configPath} (nicht vorhanden: Standardwerte und Umgebung)` : `${ctx.configPath} (not found: defaults and environment)`);
  const count = de
    ? `${errors.length} ${errors.length === 1 ? 'Fehler' : 'Fehler'}, ${warnings.length} ${warnings.length === 1 ? 'Warnung' : 'Warnungen'}`
    : `${errors.length} ${errors.length === 1 ? 'error' : 'errors'}, ${warnings.length} ${warnings.length === 1 ? 'warning' : 'warnings'}`;
  ctx.out.line(`${source}: ${count}`);
  for (const p of [...errors, ...warnings]) ctx.out.line(`\n${renderProblem(p, report.file, ctx.lang)}`);
  if (!errors.length && !warnings.length) ctx.out.line(de ? 'Die Konfiguration ist in Ordnung.' : 'The configuration is fine.');
  return errors.length ? 1 : 0;
}

export function renderProblem(p: ConfigProblem, file: string, lang: Lang): string {
  const de = lang === 'de';
  const kind = p.severity === 'error' ? (de ? 'Fehler' : 'Error') : de ? 'Warnung' : 'Warning';
  return [
    `${kind}: ${p.path ? `${p.path} (${describeLocation(p, file, lang)})` : describeLocation(p, file, lang)}`,
    `  ${p.code}: ${p.title[lang]}`,
    `  ${de ? 'Ursache' : 'Cause'}: ${p.message[lang]}`,
    `  ${de ? 'Behebung' : 'Fix'}: ${p.fix[lang]}`,
  ].join('\n');
}

async function show(ctx: CommandContext, json: boolean): Promise<number> {
  const loaded = await openApp(ctx);
  const de = ctx.lang === 'de';
  let box: KeyedSecretBox | undefined;
  let boxError: string | undefined;
  if (secretSlots(loaded.config).some((s) => isEncrypted(s.value))) {
    try {
      box = await loaded.secretBox();
    } catch (err) {
      boxError = err instanceof MbError ? err.code : 'MB_INTERNAL';
    }
  }
  const { config: copy, secrets } = maskedConfig(configSchema, loaded.config, box, boxError);
  const notes = new Map<string, string>();
  for (const s of secrets) {
    let note = s.encrypted ? (de ? 'verschlüsselt' : 'encrypted') : de ? 'Klartext' : 'plain text';
    if (s.unreadable) note += de ? `, nicht entschlüsselbar: ${s.unreadable}` : `, cannot be decrypted: ${s.unreadable}`;
    notes.set(s.path, note);
  }
  for (const [path, name] of loaded.fromEnv) {
    const prior = notes.get(path);
    const from = de ? `aus ${name}` : `from ${name}`;
    notes.set(path, prior ? `${prior}, ${from}` : from);
  }
  if (json) {
    ctx.out.json(copy);
    return 0;
  }
  const doc = new Document(copy);
  doc.commentBefore = de
    ? ` Wirksame Konfiguration: ${loaded.path ?? `${ctx.configPath} (nicht vorhanden)`} mit Umgebungsvariablen und Standardwerten; Geheimnisse maskiert`
    : ` Effective configuration: ${loaded.path ?? `${ctx.configPath} (not found)`} with environment overrides and defaults; secrets masked`;
  for (const [path, note] of notes) {
    const node = doc.getIn(path.split('.'), true) as Node | undefined;
    if (node && isScalar(node)) node.comment = ` ${note}`;
    else if (node) node.commentBefore = ` ${note}`;
  }
  ctx.out.line(doc.toString({ lineWidth: 0 }).trimEnd());
  return 0;
}
