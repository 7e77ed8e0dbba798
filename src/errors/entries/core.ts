import type { CatalogueSection } from '../types.ts';

/** Failures that belong to no single capability. */
export const core = {
  MB_INTERNAL: {
    http: 500,
    title: { en: 'Internal error', de: 'Interner Fehler' },
    cause: {
      en: 'mailbridge met a condition it does not expect: {detail}',
      de: 'mailbridge ist auf einen unerwarteten Zustand gestoßen: {detail}',
    },
    fix: {
      en: 'Check the log around this time and report the problem with the log lines attached.',
      de: 'Prüfen Sie das Protokoll zu diesem Zeitpunkt und melden Sie das Problem mit den Protokollzeilen.',
    },
  },
  // Listeners (gateway, relay, notify inbound, sandbox): one helper turns bind failures into these (errors/listen.ts).
  MB_PORT_IN_USE: {
    http: 500,
    title: { en: 'Port already in use', de: 'Port bereits belegt' },
    cause: {
      en: '{what} cannot listen on {host}:{port}: another program (or another listener of this configuration) holds the port. Held by: {holder}.',
      de: '{what} kann nicht auf {host}:{port} lauschen: Ein anderes Programm (oder ein anderer Listener dieser Konfiguration) belegt den Port. Belegt von: {holder}.',
    },
    fix: {
      en: 'Stop that program (find it with `ss -ltnp \'sport = :{port}\'`), or give {what} another port in mailbridge.yaml; `mailbridge config check` reports ports the configuration uses twice.',
      de: 'Beenden Sie dieses Programm (finden mit `ss -ltnp \'sport = :{port}\'`) oder geben Sie {what} in mailbridge.yaml einen anderen Port; `mailbridge config check` meldet Ports, die die Konfiguration doppelt verwendet.',
    },
  },
  MB_PORT_NOT_PERMITTED: {
    http: 500,
    title: { en: 'Port needs privileges', de: 'Port erfordert Berechtigungen' },
    cause: {
      en: '{what} may not listen on {host}:{port}: ports below 1024 need root or the capability CAP_NET_BIND_SERVICE.',
      de: '{what} darf nicht auf {host}:{port} lauschen: Ports unter 1024 erfordern root oder die Berechtigung CAP_NET_BIND_SERVICE.',
    },
    fix: {
      en: 'Use a port of 1024 or above, or grant the capability: `sudo setcap cap_net_bind_service=+ep $(readlink -f $(command -v node))` (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE).',
      de: 'Verwenden Sie einen Port ab 1024 oder vergeben Sie die Berechtigung: `sudo setcap cap_net_bind_service=+ep $(readlink -f $(command -v node))` (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE).',
    },
  },
  MB_ADDRESS_NOT_AVAILABLE: {
    http: 500,
    title: { en: 'Address not on this machine', de: 'Adresse nicht auf diesem Rechner' },
    cause: {
      en: '{what} cannot listen on {host}:{port}: no network interface of this machine has the address {host}.',
      de: '{what} kann nicht auf {host}:{port} lauschen: Keine Netzwerkschnittstelle dieses Rechners hat die Adresse {host}.',
    },
    fix: {
      en: 'Use an address this machine has (`ip -brief address`), 127.0.0.1 for this machine only, or 0.0.0.0 for all interfaces.',
      de: 'Verwenden Sie eine Adresse dieses Rechners (`ip -brief address`), 127.0.0.1 nur für diesen Rechner oder 0.0.0.0 für alle Schnittstellen.',
    },
  },
  MB_CLI_USAGE: {
    http: 400,
    title: { en: 'Invalid command line', de: 'Ungültiger Befehlsaufruf' },
    cause: { en: '{detail}', de: '{detail}' },
    fix: {
      en: 'Run `mailbridge {command} --help` for the accepted arguments.',
      de: 'Führen Sie `mailbridge {command} --help` aus, um die zulässigen Argumente zu sehen.',
    },
  },
  MB_CLI_UNKNOWN_COMMAND: {
    http: 400,
    title: { en: 'Unknown command', de: 'Unbekannter Befehl' },
    cause: { en: 'mailbridge has no command "{command}".', de: 'mailbridge kennt den Befehl „{command}“ nicht.' },
    fix: {
      en: 'Run `mailbridge --help` for the list of commands.',
      de: 'Führen Sie `mailbridge --help` aus, um alle Befehle zu sehen.',
    },
  },
} satisfies CatalogueSection;
