/**
 * `mailbridge secret set <path> | list`: store a secret encrypted in mailbridge.yaml (the value is
 * read without echo, from all of stdin when piped, or from --file; never from the command line), and list the secret
 * settings with their state and masked hint — never a value.
 */
import { readFile } from 'node:fs/promises';
import { registerSecret } from '../../../log/redact.ts';
import { listSecrets, readRawConfig, secretPathFor, secretSettings, storeSecret, type SecretInfo } from '../../../app/config.ts';
import { MbError } from '../../../errors/index.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { noMoreArgs, subcommand, usageError } from '../args.ts';

export const command = defineCommand({
  name: 'secret',
  summary: {
    en: 'Store a secret encrypted in mailbridge.yaml; list secrets, masked',
    de: 'Geheimnis verschlüsselt in mailbridge.yaml speichern; Geheimnisse maskiert auflisten',
  },
  help: {
    en: `Usage: mailbridge secret set <path> [--file FILE]
       mailbridge secret list [--json]

  set <path>   Ask for the value without showing it, or read all of stdin when input is piped
               (several lines are kept: PEM keys, JSON service accounts), or read --file FILE;
               encrypt it (AES-256-GCM) and write it as enc:v1:… at <path> in mailbridge.yaml.
               Comments and layout of the file stay as they are; the file is created if it does
               not exist. List items are addressed by their index. Examples:
                 mailbridge secret set connections.contoso.clientSecret
                 printf %s "$SECRET" | mailbridge secret set connections.contoso.clientSecret
                 mailbridge secret set notify.apns.privateKey --file AuthKey_ABC123DEFG.p8
                 mailbridge secret set notify.watch.groups.plant.listeners.0.password
  list         Every secret setting in use, with its state (encrypted, plain text, missing), where
               it comes from and the hint Entra ID also shows (first three characters of long
               secrets). Exit code 1 if an encrypted secret cannot be decrypted.

{options}

Secret settings (<name>: a name, <n>: a list index): ${secretSettings().join(', ')}.

The key is MAILBRIDGE_KEY (base64 of 32 bytes) or the key file (secrets.keyFile, default
mailbridge.key next to mailbridge.yaml), created with mode 0600 by the first \`secret set\`.
Back the key file up separately from the configuration: without it the secrets are lost.`,
    de: `Aufruf: mailbridge secret set <pfad> [--file DATEI]
        mailbridge secret list [--json]

  set <pfad>   Fragt den Wert ab, ohne ihn anzuzeigen, oder liest die ganze Standardeingabe, wenn
               sie umgeleitet ist (mehrere Zeilen bleiben erhalten: PEM-Schlüssel, JSON-Dienstkonten),
               oder liest --file DATEI; verschlüsselt ihn (AES-256-GCM) und schreibt ihn als
               enc:v1:… an <pfad> in mailbridge.yaml. Kommentare und Aufbau der Datei bleiben
               erhalten; fehlt die Datei, wird sie angelegt. Listeneinträge werden über ihre
               Nummer angesprochen. Beispiele:
                 mailbridge secret set connections.contoso.clientSecret
                 printf %s "$GEHEIMNIS" | mailbridge secret set connections.contoso.clientSecret
                 mailbridge secret set notify.apns.privateKey --file AuthKey_ABC123DEFG.p8
                 mailbridge secret set notify.watch.groups.plant.listeners.0.password
  list         Jede verwendete geheime Einstellung mit Zustand (verschlüsselt, Klartext, fehlt),
               Herkunft und dem Hinweis, den auch Entra ID zeigt (die ersten drei Zeichen langer
               Geheimnisse). Exit-Code 1, wenn ein verschlüsseltes Geheimnis nicht entschlüsselbar ist.

{options}

Geheime Einstellungen (<name>: ein Name, <n>: Nummer in einer Liste): ${secretSettings().join(', ')}.

Der Schlüssel ist MAILBRIDGE_KEY (Base64 von 32 Byte) oder die Schlüsseldatei (secrets.keyFile,
standardmäßig mailbridge.key neben mailbridge.yaml), die das erste \`secret set\` mit den Rechten
0600 anlegt. Sichern Sie die Schlüsseldatei getrennt von der Konfiguration: ohne sie sind die
Geheimnisse verloren.`,
  },
  options: {
    json: { type: 'boolean', help: { en: 'list: print JSON', de: 'list: JSON ausgeben' } },
    file: {
      type: 'string',
      value: { en: 'FILE', de: 'DATEI' },
      help: { en: 'set: read the value from this file (e.g. an APNs .p8 key)', de: 'set: den Wert aus dieser Datei lesen (z. B. einen APNs-.p8-Schlüssel)' },
    },
  },
  async run(ctx) {
    const [given, ...rest] = ctx.args;
    const sub = subcommand('secret', ctx.lang, given, ['set', 'list']);
    if (sub === 'set') {
      if (rest.length !== 1) {
        throw usageError('secret', ctx.lang, {
          en: 'secret set takes exactly one path, e.g. connections.contoso.clientSecret; it asks for the value.',
          de: 'secret set erwartet genau einen Pfad, z. B. connections.contoso.clientSecret; den Wert fragt es ab.',
        });
      }
      return set(ctx, rest[0]!, ctx.opts.file);
    }
    noMoreArgs('secret', ctx.lang, rest);
    return list(ctx, ctx.opts.json);
  },
});

async function set(ctx: CommandContext, given: string, file: string | undefined): Promise<number> {
  const de = ctx.lang === 'de';
  // Refuse a wrong path before anyone types a secret.
  const current = await readRawConfig(ctx.configPath, ctx.env);
  const segments = secretPathFor(given, current.raw);
  const path = segments.join('.');
  const value = (await readValue(ctx, path, file)).replace(/[\r\n]+$/, '');
  registerSecret(value);
  if (value === '') throw new MbError('MB_SECRET_EMPTY', { field: path });
  const r = await storeSecret(ctx.configPath, segments, value, ctx.env);
  ctx.out.line(
    de
      ? `${r.path} verschlüsselt in ${r.file} gespeichert${r.fileCreated ? ' (Datei neu angelegt)' : ''}; Hinweis: ${r.hint}`
      : `${r.path} stored encrypted in ${r.file}${r.fileCreated ? ' (file created)' : ''}; hint: ${r.hint}`,
  );
  if (r.keyCreated) {
    ctx.out.line(
      de
        ? `Neue Schlüsseldatei ${r.keyFile} angelegt (Rechte 0600). Sichern Sie sie getrennt von der Konfiguration: ohne sie lassen sich die Geheimnisse nicht entschlüsseln.`
        : `Created the key file ${r.keyFile} (mode 0600). Back it up separately from the configuration: without it the secrets cannot be decrypted.`,
    );
  } else if (r.keySource === 'env') {
    ctx.out.line(de ? 'Verschlüsselt mit dem Schlüssel aus MAILBRIDGE_KEY.' : 'Encrypted with the key from MAILBRIDGE_KEY.');
  }
  if (r.overriddenBy) {
    ctx.out.line(
      de
        ? `Achtung: ${r.overriddenBy} ist gesetzt und überschreibt diesen Wert, solange die Variable existiert.`
        : `Note: ${r.overriddenBy} is set and overrides this value as long as the variable exists.`,
    );
  }
  const connection = /^connections\.([^.]+)\.clientSecret$/.exec(path)?.[1];
  if (connection) {
    const after = await readRawConfig(ctx.configPath, ctx.env);
    const c = (after.raw.connections as Record<string, Record<string, unknown>> | undefined)?.[connection];
    if (c && c.clientSecretExpires === undefined) {
      ctx.out.line(
        de
          ? `Tipp: Tragen Sie connections.${connection}.clientSecretExpires: JJJJ-MM-TT ein (Entra Admin Center › Zertifikate & Geheimnisse › Gültig bis), dann warnt \`mailbridge config check\` vor dem Ablauf.`
          : `Tip: add connections.${connection}.clientSecretExpires: YYYY-MM-DD (Entra admin center › Certificates & secrets › Expires), so \`mailbridge config check\` warns before it expires.`,
      );
    }
  }
  return 0;
}

/**
 * The value from --file, from all of piped stdin, or typed without echo. Whole input, not its first
 * line: a PEM key or a pretty-printed JSON service account spans lines. A trailing line break
 * (echo, an editor's last newline) is not part of the secret.
 */
async function readValue(ctx: CommandContext, path: string, file: string | undefined): Promise<string> {
  if (file !== undefined) {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new MbError('MB_SECRET_FILE_UNREADABLE', { file, field: path, detail: (err as Error).message }, { cause: err });
    }
  }
  const piped = await ctx.readStdin();
  if (piped !== undefined) return piped;
  const de = ctx.lang === 'de';
  return ctx.prompt(de ? `Wert für ${path} (Eingabe wird nicht angezeigt): ` : `Value for ${path} (input is not shown): `, { secret: true });
}

async function list(ctx: CommandContext, json: boolean): Promise<number> {
  const de = ctx.lang === 'de';
  const infos = await listSecrets(ctx.configPath, ctx.env);
  const failing = infos.some((i) => i.problem);
  if (json) {
    ctx.out.json(infos);
    return failing ? 1 : 0;
  }
  if (infos.length === 0) {
    ctx.out.line(
      de
        ? 'Noch keine geheime Einstellung in Verwendung. Setzen Sie eine mit `mailbridge secret set <pfad>`.'
        : 'No secret setting in use yet. Set one with `mailbridge secret set <path>`.',
    );
    return 0;
  }
  const width = Math.max(...infos.map((i) => i.path.length));
  for (const i of infos) ctx.out.line(`${i.path.padEnd(width)}  ${describe(i, de)}`.trimEnd());
  return failing ? 1 : 0;
}

function describe(i: SecretInfo, de: boolean): string {
  const state = { encrypted: de ? 'verschlüsselt' : 'encrypted', plain: de ? 'Klartext' : 'plain text', missing: de ? 'fehlt' : 'missing' }[i.state];
  const parts = [state.padEnd(13), i.hint];
  if (i.env) parts.push(de ? `(aus ${i.env})` : `(from ${i.env})`);
  if (i.problem) parts.push(de ? `– nicht entschlüsselbar: ${i.problem} (\`mailbridge config check\` nennt die Behebung)` : `– cannot be decrypted: ${i.problem} (\`mailbridge config check\` gives the fix)`);
  if (i.state === 'plain' && !i.env) parts.push(de ? '– mit `mailbridge secret set` verschlüsseln' : '– encrypt it with `mailbridge secret set`');
  return parts.filter(Boolean).join(' ');
}
