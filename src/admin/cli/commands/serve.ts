import { loadConfig } from '../../../app/config.ts';
import { createLogger } from '../../../log/index.ts';
import { startGateway } from '../../../server/index.ts';
import { setupWillCreate } from '../../../setup/relax.ts';
import { reloadConfig } from '../../../server/reload.ts';
import { noMoreArgs } from '../args.ts';
import { defineCommand } from '../command.ts';

export const command = defineCommand({
  name: 'serve',
  summary: { en: 'Run the gateway (store, HTTP API, health endpoint)', de: 'Gateway starten (Speicher, HTTP-API, Health-Endpunkt)' },
  help: {
    en: `Usage: mailbridge serve [--port N]

Runs the long-running gateway with the store from mailbridge.yaml (embedded SQLite by default)
and serves GET /health. With a relay: section it also runs the SMTP relay (listeners, queue,
delivery to Microsoft 365 by relay.routes). Stops cleanly on Ctrl-C or SIGTERM. SIGHUP reads
mailbridge.yaml again: a new log.level applies at once, other changes need a restart (the log
names them); POST /api/v1/config/apply restarts what changed. A connection not set up yet
(clientId: new, no credential) does not stop it: set it up with \`mailbridge setup\` or
POST /api/v1/setup/runs.

{options}`,
    de: `Aufruf: mailbridge serve [--port N]

Startet das dauerhaft laufende Gateway mit dem Speicher aus mailbridge.yaml (standardmäßig
eingebettetes SQLite) und stellt GET /health bereit. Mit einem Abschnitt relay: läuft auch das
SMTP-Relay (Listener, Warteschlange, Zustellung an Microsoft 365 nach relay.routes). Beendet sich
sauber mit Strg-C oder SIGTERM. SIGHUP liest mailbridge.yaml neu: ein neues log.level gilt sofort,
andere Änderungen brauchen einen Neustart (das Protokoll nennt sie); POST /api/v1/config/apply
startet neu, was sich geändert hat. Eine noch nicht eingerichtete Verbindung (clientId: new, kein
Nachweis) hält es nicht auf: einrichten mit \`mailbridge setup\` oder POST /api/v1/setup/runs.

{options}`,
  },
  options: {
    port: {
      type: 'integer',
      value: 'N',
      min: 0,
      max: 65535,
      help: { en: 'listen on this port instead of server.port (0: any free port)', de: 'auf diesem Port statt server.port lauschen (0: ein freier Port)' },
    },
  },
  async run(ctx) {
    // A connection whose app setup has yet to create (clientId: new, no credential) does not stop the
    // gateway: its setup runs through the admin API (POST /api/v1/setup/runs); until then what uses
    // it fails with the connection's MB code (and /health/ready names it once a token was refused).
    const { config, path, keyFile, warnings } = await loadConfig(ctx.configPath, ctx.env, { lang: ctx.lang, relax: setupWillCreate });
    noMoreArgs('serve', ctx.lang, ctx.args);
    // --port applies to the configuration read at start and to every one SIGHUP reads again.
    const adjust = (c: typeof config) => {
      if (ctx.opts.port !== undefined) c.server.port = ctx.opts.port;
    };
    adjust(config);
    const log = createLogger({ level: config.log.level });
    const gw = await startGateway(config, log, { keyFile, env: ctx.env, configPath: ctx.configPath });
    const de = ctx.lang === 'de';
    for (const name of new Set(warnings.filter(setupWillCreate).map((w) => w.path.split('.')[1] ?? ''))) {
      ctx.out.line(
        de
          ? `Verbindung ${name} ist noch nicht eingerichtet: \`mailbridge setup ${name}\` ausführen oder die Einrichtung in der Konsole starten (POST /api/v1/setup/runs).`
          : `Connection ${name} is not set up yet: run \`mailbridge setup ${name}\` or start its setup in the console (POST /api/v1/setup/runs).`,
      );
    }
    ctx.out.line(
      de
        ? `mailbridge läuft: ${gw.url}/health (Konfiguration: ${path ?? 'Standardwerte'}, Speicher: ${config.store.driver})`
        : `mailbridge is running: ${gw.url}/health (config: ${path ?? 'defaults'}, store: ${config.store.driver})`,
    );
    if (gw.relay) {
      const ports = gw.relay.relay.listeners.map((l) => `${l.host}:${l.port} (${l.tls})`).join(', ');
      const routes = gw.relay.transport.router.size;
      ctx.out.line(de ? `SMTP-Relay lauscht auf ${ports}; ${routes} Route(n).` : `SMTP relay listening on ${ports}; ${routes} route(s).`);
    }
    let running = config;
    // Reloads run one after another; a reload still running when the stop comes is simply dropped.
    let reloading = Promise.resolve();
    const onHup = () => {
      reloading = reloading.then(async () => {
        running = await reloadConfig(running, { configPath: ctx.configPath, env: ctx.env, lang: ctx.lang, log, adjust });
      });
    };
    process.on('SIGHUP', onHup);
    const sig = await ctx.stopSignal;
    process.off('SIGHUP', onHup);
    ctx.out.line(de ? `${sig} empfangen, mailbridge wird beendet.` : `${sig} received, stopping mailbridge.`);
    await gw.close(sig);
    return 0;
  },
});
