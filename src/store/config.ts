/**
 * The `store` section of mailbridge.yaml: which database keeps mailbridge's state (embedded SQLite
 * by default, PostgreSQL for several nodes). The composition root puts it into the whole schema.
 */
import { z } from 'zod';
import { secretField } from '../config/secret-field.ts';

export const storeSchema = z
  .discriminatedUnion('driver', [
    z.object({ driver: z.literal('sqlite'), path: z.string().default('data/mailbridge.db') }).strict(),
    z.object({ driver: z.literal('postgres'), url: secretField('PostgreSQL connection URL, e.g. postgres://user:password@host/db') }).strict(),
  ])
  .prefault({ driver: 'sqlite' });
