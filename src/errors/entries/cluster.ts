import type { CatalogueSection } from '../types.ts';

/** Several nodes on one PostgreSQL database: leases, fencing, the node registry (src/cluster/). */
export const cluster = {
  MB_CLUSTER_LEASE_LOST: {
    http: 409,
    title: { en: 'This node no longer owns the work it tried to record', de: 'Dieser Knoten ist nicht mehr Eigentümer der Arbeit, die er speichern wollte' },
    cause: {
      en: 'The lease {lease} (epoch {epoch}) of node {owner} expired or was taken over by another node, so its write was refused. This happens when a node could not renew its leases in time (paused, overloaded, or cut off from the database) and another node took its mailboxes over; nothing is lost, the new owner continues from the last checkpoint.',
      de: 'Die Lease {lease} (Epoche {epoch}) des Knotens {owner} ist abgelaufen oder wurde von einem anderen Knoten übernommen; sein Schreibzugriff wurde deshalb abgewiesen. Das passiert, wenn ein Knoten seine Leases nicht rechtzeitig erneuern konnte (angehalten, überlastet oder von der Datenbank getrennt) und ein anderer Knoten seine Postfächer übernommen hat; nichts geht verloren, der neue Eigentümer macht am letzten Prüfpunkt weiter.',
    },
    fix: {
      en: 'Nothing to do if it is rare. If it repeats, check the node\'s load and its connection to PostgreSQL, and that the clocks of all nodes are synchronised (timedatectl status: "System clock synchronized: yes"). mailbridge status shows which node owns what.',
      de: 'Selten auftretend ist nichts zu tun. Wiederholt es sich, prüfen Sie die Last des Knotens, seine Verbindung zu PostgreSQL und ob die Uhren aller Knoten synchron laufen (timedatectl status: „System clock synchronized: yes“). mailbridge status zeigt, welcher Knoten was besitzt.',
    },
  },
  MB_CLUSTER_CLOCK_SKEW: {
    http: 500,
    title: { en: 'This node\'s clock is off from the database server\'s', de: 'Die Uhr dieses Knotens weicht von der des Datenbankservers ab' },
    cause: {
      en: 'Node {node}\'s clock differs from the PostgreSQL server\'s by {offset} ms (positive: the node is ahead), more than a quarter of the lease time ({leaseMs} ms). Leases, heartbeats and the claims on deliveries (the relay\'s messages and the notifications) go by the database server\'s clock, so the nodes still share that work correctly; but what this node times by its own clock is off: the relay\'s retry schedule and per-mailbox rate limits (starts per minute, recipients per day), token lifetimes (the client assertions sent to Entra ID carry this clock\'s time), TLS certificate validity, and the times it logs and records.',
      de: 'Die Uhr des Knotens {node} weicht um {offset} ms von der des PostgreSQL-Servers ab (positiv: der Knoten geht vor), mehr als ein Viertel der Lease-Zeit ({leaseMs} ms). Leases, die Meldungen der Knoten und die Reservierungen von Zustellungen (Nachrichten des Relays und Benachrichtigungen) richten sich nach der Uhr des Datenbankservers, diese Arbeit wird also weiterhin richtig verteilt; falsch ist aber alles, was dieser Knoten nach seiner eigenen Uhr bemisst: der Zeitplan des Relays für erneute Versuche und seine Ratenlimits je Postfach (Starts pro Minute, Empfänger pro Tag), die Gültigkeit von Tokens (auch die Client-Assertions an Entra ID tragen die Zeit dieser Uhr), die Gültigkeit von TLS-Zertifikaten und die Zeiten, die er protokolliert und speichert.',
    },
    fix: {
      en: 'Synchronise the clocks of every node and of the database server with NTP: timedatectl set-ntp true, then timedatectl status must say "System clock synchronized: yes" (chronyc tracking shows the offset).',
      de: 'Synchronisieren Sie die Uhren aller Knoten und des Datenbankservers per NTP: timedatectl set-ntp true; danach muss timedatectl status „System clock synchronized: yes“ melden (chronyc tracking zeigt die Abweichung).',
    },
  },
} satisfies CatalogueSection;
