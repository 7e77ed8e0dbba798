/**
 * Which config problems `setup` will fix itself, so that the commands that load a configuration
 * before setup has run (setup, serve, check) accept them. Apart from setup/index.ts, which loads
 * setup's Graph and certificate code: serve needs only this rule.
 */
import type { ConfigProblem } from '../config/index.ts';

/**
 * Configuration errors setup is about to resolve, so it loads such a file (LoadOptions.relax): a
 * connection without credential, or with `clientId: new` for an app that does not exist yet.
 */
export function setupWillCreate(problem: ConfigProblem): boolean {
  return problem.code === 'MB_CONFIG_NO_CREDENTIAL' || (problem.code === 'MB_CONFIG_CLIENT_ID_INVALID' && problem.params.found === '"new"');
}
