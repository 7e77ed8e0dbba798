/**
 * `mailbridge status`: the nodes sharing this configuration's store (one on SQLite, every gateway
 * and `fetch` process on PostgreSQL): id, name, version, role, uptime, whether each is live and
 * what it owns. It reads the node registry the nodes write every few seconds, so it runs on any
 * host that reaches the store, beside the gateway or not.
 */
import { openApp } from '../../../app/open.ts';
import { nodesView, statusSources, type NodeView } from '../../../cluster/status.ts';
import { noMoreArgs } from '../args.ts';
import { defineCommand } from '../command.ts';

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  return `${m}m ${String(seconds % 60).padStart(2, '0')}s`;
}

function owns(n: NodeView): string {
  const parts = Object.entries(n.owns).map(([pool, count]) => `${pool} ${count}`);
  if (n.relayClaimed) parts.push(`relay ${n.relayClaimed}`);
  return parts.length > 0 ? parts.join(', ') : '–';
}

export const command = defineCommand({
  name: 'status',
  summary: { en: 'Show the nodes sharing the store and what each owns', de: 'Die Knoten am gemeinsamen Speicher zeigen und was jeder besitzt' },
  help: {
    en: `Usage: mailbridge status [--json]

Lists the nodes that use the store of mailbridge.yaml: every running \`mailbridge serve\` and
\`mailbridge fetch\` (on SQLite the one machine, on PostgreSQL every node of the cluster), with its
id (new at each start), name (node.name, else the host name), version, role, uptime, and the leases
it holds: connector:<name> counts mailboxes, watch:<group> counts shards of watched mailboxes,
relay (PostgreSQL) the relay messages it is delivering (claimed).
A node without a heartbeat for 30 seconds is shown as stopped; its work moves to the live nodes,
its relay messages once their claims run out.

{options}`,
    de: `Aufruf: mailbridge status [--json]

Listet die Knoten, die den Speicher aus mailbridge.yaml nutzen: jedes laufende \`mailbridge serve\`
und \`mailbridge fetch\` (bei SQLite die eine Maschine, bei PostgreSQL jeder Knoten des Clusters), mit
seiner ID (neu bei jedem Start), seinem Namen (node.name, sonst der Rechnername), Version, Rolle,
Laufzeit und den Leases, die er hält: connector:<Name> zählt Postfächer, watch:<Gruppe> zählt Teile
der überwachten Postfächer, relay (PostgreSQL) die Relay-Nachrichten, die er gerade zustellt
(beansprucht). Ein Knoten ohne Lebenszeichen seit 30 Sekunden wird als gestoppt gezeigt; seine
Arbeit geht an die aktiven Knoten, seine Relay-Nachrichten, sobald ihr Anspruch abläuft.

{options}`,
  },
  options: {
    json: { type: 'boolean', help: { en: 'print the answer of GET /api/v1/nodes as JSON', de: 'die Antwort von GET /api/v1/nodes als JSON ausgeben' } },
  },
  async run(ctx) {
    noMoreArgs('status', ctx.lang, ctx.args);
    const app = await openApp({ configPath: ctx.configPath, env: ctx.env, lang: ctx.lang });
    try {
      const store = await app.store();
      const nodes = await nodesView(statusSources(store));
      if (ctx.opts.json) {
        ctx.out.line(JSON.stringify({ store: store.driver, nodes }, null, 2));
        return 0;
      }
      const de = ctx.lang === 'de';
      const live = nodes.filter((n) => n.live).length;
      ctx.out.line(
        de
          ? `Speicher: ${store.driver}; ${live} Knoten aktiv, ${nodes.length - live} gestoppt`
          : `Store: ${store.driver}; ${live} node(s) live, ${nodes.length - live} stopped`,
      );
      if (nodes.length === 0) {
        ctx.out.line(de ? 'Kein Knoten hat sich gemeldet: läuft mailbridge serve?' : 'No node has reported: is mailbridge serve running?');
        return 0;
      }
      const head = de ? ['NAME', 'ID', 'VERSION', 'ROLLE', 'LAUFZEIT', 'ZUSTAND', 'BESITZT'] : ['NAME', 'ID', 'VERSION', 'ROLE', 'UPTIME', 'STATE', 'OWNS'];
      const rows = nodes.map((n) => [
        n.name,
        n.id,
        n.version,
        n.role,
        duration(n.uptimeSeconds),
        n.live ? (de ? 'aktiv' : 'live') : de ? `gestoppt (zuletzt ${n.heartbeatAt})` : `stopped (last seen ${n.heartbeatAt})`,
        owns(n),
      ]);
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [head, ...rows]) ctx.out.line(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
      return 0;
    } finally {
      await app.close();
    }
  },
});
