import type { CatalogueSection } from '../types.ts';

/** The admin API under /api/v1 (src/api): keys, scopes, request checks. */
export const api = {
  MB_API_UNAUTHORIZED: {
    http: 401,
    title: { en: 'API key missing or wrong', de: 'API-Schlüssel fehlt oder ist falsch' },
    cause: {
      en: 'The request to {path} had no "Authorization: Bearer" header, or its key is none of api.keys (nor, for subscriptions, of notify.api.keys). Every call to /api/v1 needs one.',
      de: 'Die Anfrage an {path} hatte keinen Header „Authorization: Bearer“, oder ihr Schlüssel gehört weder zu api.keys noch (für Abonnements) zu notify.api.keys. Jeder Aufruf von /api/v1 braucht einen.',
    },
    fix: {
      en: 'Send the header "Authorization: Bearer <key>". Create a key with `mailbridge secret set api.keys.<name>.key` (at least 16 random characters), give it scopes under api.keys.<name>.scopes (read, operate, admin, subscriptions) and restart mailbridge.',
      de: 'Senden Sie den Header „Authorization: Bearer <Schlüssel>“. Legen Sie einen Schlüssel mit `mailbridge secret set api.keys.<name>.key` an (mindestens 16 Zufallszeichen), geben Sie ihm unter api.keys.<name>.scopes Berechtigungen (read, operate, admin, subscriptions) und starten Sie mailbridge neu.',
    },
  },
  MB_API_FORBIDDEN: {
    http: 403,
    title: { en: 'API key lacks the scope', de: 'Dem API-Schlüssel fehlt die Berechtigung' },
    cause: {
      en: 'The key {key} may use {scopes}; {method} {path} needs the scope {scope}.',
      de: 'Der Schlüssel {key} darf {scopes}; {method} {path} braucht die Berechtigung {scope}.',
    },
    fix: {
      en: 'Use a key that has the scope {scope}, or add it in mailbridge.yaml: api.keys.{key}.scopes: [..., {scope}] (admin includes operate and read; operate includes read), then restart mailbridge.',
      de: 'Verwenden Sie einen Schlüssel mit der Berechtigung {scope}, oder ergänzen Sie sie in mailbridge.yaml: api.keys.{key}.scopes: [..., {scope}] (admin schließt operate und read ein, operate schließt read ein), und starten Sie mailbridge neu.',
    },
  },
  MB_API_INVALID: {
    http: 400,
    title: { en: 'Request not valid', de: 'Anfrage ungültig' },
    cause: {
      en: 'The request to {path} does not match the API description: {detail}',
      de: 'Die Anfrage an {path} passt nicht zur API-Beschreibung: {detail}',
    },
    fix: {
      en: 'Correct the request as the reference at /api/reference describes it (machine-readable: /api/openapi.json).',
      de: 'Korrigieren Sie die Anfrage so, wie die Referenz unter /api/reference sie beschreibt (maschinenlesbar: /api/openapi.json).',
    },
  },
  MB_API_NOT_FOUND: {
    http: 404,
    title: { en: 'No such API route', de: 'Diese API-Route gibt es nicht' },
    cause: {
      en: '{method} {path} is not part of the admin API.',
      de: '{method} {path} gehört nicht zur Admin-API.',
    },
    fix: {
      en: 'Look up the route in the reference at /api/reference (machine-readable: /api/openapi.json).',
      de: 'Schlagen Sie die Route in der Referenz unter /api/reference nach (maschinenlesbar: /api/openapi.json).',
    },
  },
  MB_API_NOT_CONFIGURED: {
    http: 404,
    title: { en: 'Not configured in this gateway', de: 'In diesem Gateway nicht eingerichtet' },
    cause: {
      en: '{path} answers only when mailbridge.yaml has a {section} section and `mailbridge serve` runs it; this gateway has none.',
      de: '{path} antwortet nur, wenn mailbridge.yaml einen Abschnitt {section} hat und `mailbridge serve` ihn betreibt; dieses Gateway hat keinen.',
    },
    fix: {
      en: 'Add the {section} section to mailbridge.yaml (see `mailbridge config schema`), check it with `mailbridge config check`, and restart mailbridge: systemctl restart mailbridge',
      de: 'Ergänzen Sie den Abschnitt {section} in mailbridge.yaml (siehe `mailbridge config schema`), prüfen Sie ihn mit `mailbridge config check` und starten Sie mailbridge neu: systemctl restart mailbridge',
    },
  },
  MB_API_UNKNOWN_NAME: {
    http: 404,
    title: { en: 'Not in the configuration', de: 'Nicht in der Konfiguration' },
    cause: {
      en: 'There is no {kind} named {name}; configured: {known}.',
      de: 'Es gibt kein(e) {kind} namens {name}; eingerichtet: {known}.',
    },
    fix: {
      en: 'Use one of the configured names (GET the list of the same route without the name), or add it to mailbridge.yaml and restart mailbridge.',
      de: 'Verwenden Sie einen der eingerichteten Namen (die Liste liefert dieselbe Route ohne den Namen), oder ergänzen Sie ihn in mailbridge.yaml und starten Sie mailbridge neu.',
    },
  },
} satisfies CatalogueSection;
