/**
 * `mailbridge credential rotate <connection>`: a new certificate or client secret through Microsoft
 * Graph, switched to once a token works with it, the old one removed after the overlap
 * (src/check/rotate.ts).
 */
import { readFile } from 'node:fs/promises';
import { loadConfig } from '../../../app/config.ts';
import { openSecretBox } from '../../../config/secrets.ts';
import { openStore } from '../../../store/index.ts';
import { rotateCredential } from '../../../check/rotate.ts';
import { usageError } from '../args.ts';
import { defineCommand } from '../command.ts';

export const command = defineCommand({
  name: 'credential',
  summary: { en: 'Rotate a connection\'s certificate or client secret', de: 'Zertifikat oder geheimen Clientschlüssel einer Verbindung austauschen' },
  help: {
    en: `Usage: mailbridge credential rotate <connection> [--overlap-hours N] [--days N] [--json]

Adds a new credential to the connection's app registration through Microsoft Graph: for a
certificate connection a new key and certificate made on this machine (only the public
certificate is uploaded, with addKey and a proof signed by the current certificate), for a secret
connection a new client secret (addPassword). Once a token is issued with it, mailbridge.yaml
switches to it (the secret stored sealed). The old credential is removed after the overlap: at
once with --overlap-hours 0, else by the running gateway's daily look (or the next rotate) when
the overlap is over. Restart mailbridge within the overlap so it uses the new one.

The app needs Application.ReadWrite.OwnedBy and to own its registration (or
Application.ReadWrite.All).

{options}

Exit code 0: rotated; 1: failed (mailbridge.yaml unchanged); 2: wrong command line.`,
    de: `Aufruf: mailbridge credential rotate <verbindung> [--overlap-hours N] [--days N] [--json]

Legt über Microsoft Graph eine neue Anmeldeinformation an der App-Registrierung der Verbindung
an: für eine Zertifikatsverbindung einen neuen Schlüssel mit Zertifikat, erzeugt auf diesem
Rechner (hochgeladen wird nur das öffentliche Zertifikat, mit addKey und einem vom aktuellen
Zertifikat signierten Nachweis), für eine Verbindung mit geheimem Clientschlüssel einen neuen
Schlüssel (addPassword). Sobald damit ein Token ausgestellt wird, stellt mailbridge.yaml darauf um
(der Schlüssel verschlüsselt gespeichert). Die alte Anmeldeinformation wird nach der Überlappung
entfernt: sofort mit --overlap-hours 0, sonst beim täglichen Blick des laufenden Gateways (oder
beim nächsten rotate), wenn die Überlappung vorbei ist. mailbridge innerhalb der Überlappung neu
starten, damit es die neue verwendet.

Die App braucht Application.ReadWrite.OwnedBy und muss Besitzer ihrer Registrierung sein (oder
Application.ReadWrite.All).

{options}

Exit-Code 0: ausgetauscht; 1: fehlgeschlagen (mailbridge.yaml unverändert); 2: falscher Aufruf.`,
  },
  options: {
    'overlap-hours': {
      type: 'integer',
      value: 'N',
      min: 0,
      max: 24 * 90,
      help: { en: 'keep the old credential this long (default 24; 0: remove it at once)', de: 'alte Anmeldeinformation so lange behalten (Standard 24; 0: sofort entfernen)' },
    },
    days: {
      type: 'integer',
      value: 'N',
      min: 1,
      max: 730,
      help: { en: 'lifetime of the new credential in days (default 365; Entra allows secrets 730 at most)', de: 'Gültigkeit der neuen Anmeldeinformation in Tagen (Standard 365; Entra erlaubt für Schlüssel höchstens 730)' },
    },
    json: { type: 'boolean', help: { en: 'machine-readable output', de: 'maschinenlesbare Ausgabe' } },
  },
  async run(ctx) {
    const [sub, name, ...rest] = ctx.args;
    if (sub !== 'rotate' || name === undefined || rest.length > 0) {
      throw usageError('credential', ctx.lang, { en: 'Usage: credential rotate <connection>', de: 'Aufruf: credential rotate <verbindung>' });
    }
    const { config, path, keyFile } = await loadConfig(ctx.configPath, ctx.env, { lang: ctx.lang });
    const box = await openSecretBox({ keyFile, env: ctx.env });
    const store = await openStore(config.store);
    try {
      const caFile = config.connections[name]?.caFile;
      const r = await rotateCredential({
        configPath: path ?? ctx.configPath,
        config,
        connection: name,
        box,
        kv: store.kv,
        ...(caFile ? { ca: await readFile(caFile, 'utf8') } : {}),
        env: ctx.env,
        log: ctx.log,
        overlapMs: (ctx.opts['overlap-hours'] ?? 24) * 3_600_000,
        validDays: ctx.opts.days ?? 365,
      });
      if (ctx.opts.json) {
        ctx.out.json(r);
        return 0;
      }
      const de = ctx.lang === 'de';
      const what = r.kind === 'certificate' ? (de ? 'Neues Zertifikat' : 'New certificate') : de ? 'Neuer geheimer Clientschlüssel' : 'New client secret';
      ctx.out.line(`${what} (keyId ${r.keyId}, ${de ? 'gültig bis' : 'valid until'} ${r.expires.slice(0, 10)})${r.file ? `: ${r.file}` : ''}`);
      ctx.out.line(de ? `Token damit erhalten; mailbridge.yaml verwendet ihn jetzt.` : `A token was issued with it; mailbridge.yaml uses it now.`);
      if (r.old.keyId === undefined) ctx.out.line(de ? `Die alte Anmeldeinformation wurde nicht gefunden (${r.old.reason}); bitte im Entra Admin Center entfernen.` : `The old credential was not found (${r.old.reason}); remove it in the Entra admin center.`);
      else if (r.old.removed) ctx.out.line(de ? `Die alte (keyId ${r.old.keyId}) ist entfernt.` : `The old one (keyId ${r.old.keyId}) is removed.`);
      else ctx.out.line(de ? `Die alte (keyId ${r.old.keyId}) wird nach ${r.old.removeAfter} entfernt; mailbridge bis dahin neu starten (systemctl restart mailbridge).` : `The old one (keyId ${r.old.keyId}) is removed after ${r.old.removeAfter}; restart mailbridge before then (systemctl restart mailbridge).`);
      return 0;
    } finally {
      await store.close();
    }
  },
});
