/**
 * The error catalogue: every failure an admin can meet has an MB code, a plain cause and the fix,
 * in English and German. Sections live in ./entries/ (one per capability) so that each capability
 * owns its texts; this file is the one place that joins them, and the code type is derived from it,
 * so `new MbError('MB_TYPO')` does not compile.
 */
import { core } from './entries/core.ts';
import { store } from './entries/store.ts';
import { config } from './entries/config.ts';
import { identity } from './entries/identity.ts';
import { connector } from './entries/connector.ts';
import { relay } from './entries/relay.ts';
import { sandbox } from './entries/sandbox.ts';
import { notify } from './entries/notify.ts';
import { watchGraph } from './entries/watch-graph.ts';
import { watchEws } from './entries/watch-ews.ts';
import { watchImap } from './entries/watch-imap.ts';
import { launcher } from './entries/launcher.ts';
import { health } from './entries/health.ts';
import { check } from './entries/check.ts';
import { api } from './entries/api.ts';
import { setup } from './entries/setup.ts';
import { cluster } from './entries/cluster.ts';
import type { CatalogueEntry } from './types.ts';

export const catalogue = {
  ...core,
  ...store,
  ...config,
  ...identity,
  ...connector,
  ...relay,
  ...sandbox,
  ...notify,
  ...watchGraph,
  ...watchEws,
  ...watchImap,
  ...launcher,
  ...health,
  ...check,
  ...api,
  ...setup,
  ...cluster,
} as const;

export type MbCode = keyof typeof catalogue;

export function entryFor(code: string): CatalogueEntry | undefined {
  return (catalogue as Record<string, CatalogueEntry>)[code];
}
