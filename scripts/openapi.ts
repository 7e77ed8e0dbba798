/**
 * Writes the admin API's OpenAPI document (generated from the route specs in src/api) to
 * docs/api/openapi.json, the golden file test/api/openapi.test.ts holds the document to.
 *   npm run openapi          (after changing a route or its schemas, then commit the file)
 */
import { writeFileSync } from 'node:fs';
import { apiDocument } from '../src/api/index.ts';

export const GOLDEN = new URL('../docs/api/openapi.json', import.meta.url);

writeFileSync(GOLDEN, `${JSON.stringify(apiDocument(), null, 2)}\n`);
process.stdout.write(`wrote ${GOLDEN.pathname}\n`);
