/**
 * GET /api/v1/nodes: the nodes sharing this gateway's store (one on SQLite), with what each owns,
 * as `mailbridge status` prints them (src/cluster/status.ts).
 */
import { z } from 'zod';
import { nodesView, statusSources } from '../../cluster/status.ts';
import type { ApiContext } from '../context.ts';
import { route, type RouteSpec } from '../route.ts';

const nodeSchema = z.object({
  id: z.string().meta({ description: 'Generated at each start of the process' }),
  name: z.string().meta({ description: 'node.name, else the host name' }),
  version: z.string(),
  role: z.string().meta({ description: 'What the process runs: serve, fetch <connector>' }),
  startedAt: z.iso.datetime(),
  heartbeatAt: z.iso.datetime(),
  uptimeSeconds: z.int(),
  live: z.boolean().meta({ description: 'false: no heartbeat within the lease time; its work moves to the live nodes' }),
  owns: z.record(z.string(), z.int()).meta({ description: 'Leases held per pool (connector:<name>, watch:<group>)' }),
  self: z.boolean().meta({ description: 'The node that answered this request' }),
  relayClaimed: z.int().optional().meta({ description: 'Relay messages this node holds claimed (being delivered); PostgreSQL only' }),
});

export function nodeRoutes(ctx: ApiContext): RouteSpec[] {
  return [
    route({
      method: 'GET',
      path: '/api/v1/nodes',
      scope: 'read',
      tag: 'nodes',
      summary: {
        en: 'Nodes sharing the store: id, version, uptime, live or not, and what each owns',
        de: 'Knoten am gemeinsamen Speicher: ID, Version, Laufzeit, ob aktiv, und was jeder besitzt',
      },
      status: 200,
      response: z.object({ store: z.enum(['sqlite', 'postgres']), nodes: z.array(nodeSchema) }),
      async handler() {
        const nodes = await nodesView(statusSources(ctx.store), { self: ctx.node?.id });
        return { store: ctx.store.driver, nodes };
      },
    }),
  ];
}
