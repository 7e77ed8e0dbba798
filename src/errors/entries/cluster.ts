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
} satisfies CatalogueSection;
