import type { CatalogueSection } from '../types.ts';
import { sandboxEntraErrors } from '../../sandbox/entra/op-errors.ts';

/** The sandbox tenant's own failures (run-time operations and its admin API), not Microsoft's. */
export const sandbox = {
  ...sandboxEntraErrors,
  MB_SANDBOX_ADMIN_UNREACHABLE: {
    http: 503,
    title: { en: 'Sandbox admin API unreachable', de: 'Admin-API der Sandbox nicht erreichbar' },
    cause: {
      en: 'The sandbox admin API at {url} does not answer: {detail}',
      de: 'Die Admin-API der Sandbox unter {url} antwortet nicht: {detail}',
    },
    fix: {
      en: 'Start the sandbox with `npm run sandbox` (it writes .sandbox/admin-url), or pass --url with the address it printed.',
      de: 'Starten Sie die Sandbox mit `npm run sandbox` (sie schreibt .sandbox/admin-url) oder geben Sie mit --url die ausgegebene Adresse an.',
    },
  },
  MB_SANDBOX_ADMIN_REFUSED: {
    http: 400,
    title: { en: 'The sandbox refused the change', de: 'Die Sandbox hat die Änderung abgelehnt' },
    cause: { en: '{op}: {code}: {detail}', de: '{op}: {code}: {detail}' },
    fix: {
      en: 'Check the names and IDs against `mailbridge sandbox-admin state`, then run the operation again.',
      de: 'Prüfen Sie Namen und IDs mit `mailbridge sandbox-admin state` und führen Sie den Vorgang erneut aus.',
    },
  },
  MB_SANDBOX_EWS_LISTEN: {
    http: 500,
    title: { en: 'Sandbox EWS cannot listen', de: 'Sandbox-EWS kann nicht lauschen' },
    cause: {
      en: 'The sandbox EWS (Exchange Web Services and Autodiscover) could not open {address}: {detail}',
      de: 'Die Sandbox-EWS (Exchange Web Services und Autodiscover) konnte {address} nicht öffnen: {detail}',
    },
    fix: {
      en: 'Free the port (another sandbox may still run: `npm run sandbox` prints its endpoints) or start the sandbox with another EWS port (`mailbridge sandbox --port ews=0`).',
      de: 'Geben Sie den Port frei (eventuell läuft noch eine Sandbox: `npm run sandbox` zeigt ihre Endpunkte) oder starten Sie die Sandbox mit einem anderen EWS-Port (`mailbridge sandbox --port ews=0`).',
    },
  },
  MB_SANDBOX_ADMIN_NOT_FOUND: {
    http: 400,
    title: { en: 'No running sandbox found', de: 'Keine laufende Sandbox gefunden' },
    cause: {
      en: 'sandbox-admin looked for the admin API address in {looked} and found none.',
      de: 'sandbox-admin hat die Adresse der Admin-API in {looked} gesucht und keine gefunden.',
    },
    fix: {
      en: 'Start the sandbox (`mailbridge sandbox --dir FOLDER`), then name its folder: `mailbridge sandbox-admin --dir FOLDER state` (or --url with the address it printed).',
      de: 'Starten Sie die Sandbox (`mailbridge sandbox --dir ORDNER`) und nennen Sie dann ihren Ordner: `mailbridge sandbox-admin --dir ORDNER state` (oder --url mit der ausgegebenen Adresse).',
    },
  },
  MB_SANDBOX_PORT_BUSY: {
    http: 409,
    title: { en: 'Sandbox port already in use', de: 'Sandbox-Port bereits belegt' },
    cause: {
      en: 'The sandbox wants port {port} on {host} for "{name}" (pinned, or remembered in {file}), but another program holds it. Held by: {holder}.',
      de: 'Die Sandbox möchte Port {port} auf {host} für „{name}“ (festgelegt oder in {file} gemerkt), aber ein anderes Programm belegt ihn. Belegt von: {holder}.',
    },
    fix: {
      en: 'Stop the program on port {port} (`ss -ltnp "sport = :{port}"` names it; often a sandbox still running on the same folder), or start with `mailbridge sandbox --port {name}=0` for another free port.',
      de: 'Beenden Sie das Programm auf Port {port} (`ss -ltnp "sport = :{port}"` nennt es; oft läuft noch eine Sandbox mit demselben Ordner) oder starten Sie mit `mailbridge sandbox --port {name}=0` für einen anderen freien Port.',
    },
  },
  MB_SANDBOX_PORTS_FILE: {
    http: 400,
    title: { en: 'Sandbox ports file unreadable', de: 'Portdatei der Sandbox nicht lesbar' },
    cause: { en: '{file} is not a valid list of ports: {detail}', de: '{file} ist keine gültige Portliste: {detail}' },
    fix: {
      en: 'Correct the line (name: port, one per line), or delete {file}: the sandbox then picks free ports and writes it again.',
      de: 'Korrigieren Sie die Zeile (Name: Port, eine pro Zeile) oder löschen Sie {file}: Die Sandbox wählt dann freie Ports und schreibt die Datei neu.',
    },
  },
  MB_SANDBOX_DIR_NOT_TRAVERSABLE: {
    http: 400,
    title: { en: 'Sandbox folder not reachable for Dovecot', de: 'Sandbox-Ordner für Dovecot nicht erreichbar' },
    cause: {
      en: 'The sandbox folder {dir} lies under {folder} (mode {mode}), which Dovecot\'s mail user (vmail) and auth user (dovecot) may not pass through, so no mail could be stored.',
      de: 'Der Sandbox-Ordner {dir} liegt unter {folder} (Modus {mode}), den Dovecots Mail-Benutzer (vmail) und Auth-Benutzer (dovecot) nicht durchqueren dürfen; es könnten keine Mails gespeichert werden.',
    },
    fix: {
      en: 'Let others pass through (not list) the folder: `chmod o+x {folder}`, or start the sandbox in another folder: `mailbridge sandbox --dir /var/tmp/mailbridge-sandbox`.',
      de: 'Erlauben Sie anderen das Durchqueren (nicht das Auflisten) des Ordners: `chmod o+x {folder}`, oder starten Sie die Sandbox in einem anderen Ordner: `mailbridge sandbox --dir /var/tmp/mailbridge-sandbox`.',
    },
  },
} satisfies CatalogueSection;
