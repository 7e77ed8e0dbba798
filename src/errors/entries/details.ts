import type { Text } from '../../i18n/index.ts';

/**
 * Labels of the facts an error carries in `details` (Entra's error code, trace and correlation IDs
 * and the like, which an admin quotes to Microsoft support), as Microsoft's own pages name them in
 * each language; errors/index.ts detailLabel shows any other key as it is.
 */
export const detailLabels: Record<string, Text> = {
  aadsts: { en: 'Error code', de: 'Fehlercode' },
  error: { en: 'Error', de: 'Fehler' },
  suberror: { en: 'Suberror', de: 'Unterfehler' },
  traceId: { en: 'Trace ID', de: 'Trace-ID' },
  correlationId: { en: 'Correlation ID', de: 'Korrelations-ID' },
  timestamp: { en: 'Timestamp', de: 'Zeitstempel' },
  description: { en: 'Description', de: 'Beschreibung' },
};
