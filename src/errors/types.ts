import type { Text } from '../i18n/index.ts';

/**
 * One catalogue entry: what an admin sees when this failure happens.
 * `title` names the failure, `cause` says why it happens in plain words, `fix` says exactly what to do
 * (a portal path or a PowerShell line). All three take `{param}` placeholders.
 */
export interface CatalogueEntry {
  /** HTTP status used when the failure is reported through the REST API. */
  http: number;
  title: Text;
  cause: Text;
  fix: Text;
}

export type CatalogueSection = Record<`MB_${string}`, CatalogueEntry>;
