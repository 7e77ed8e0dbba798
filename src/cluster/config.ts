/**
 * The `node` section of mailbridge.yaml: the only setting that may differ between the nodes of a
 * cluster (everything else is the same file on every node). Optional; the host name is the default.
 */
import { z } from 'zod';

export const nodeSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/)
      .optional()
      .meta({ description: 'Name of this node in mailbridge status, the API and the metrics (default: the host name); the only node-specific setting' }),
  })
  .strict()
  .default({});

export type NodeConfig = z.infer<typeof nodeSchema>;
