/**
 * What the admin API reaches: the capabilities the gateway runs (each optional: a route of a
 * capability that is not configured answers MB_API_NOT_CONFIGURED), the sections of the
 * configuration it reads, the store, and the configuration tools bound to the whole schema. The
 * gateway (src/server, from the composition root) builds it; tests build their own. The API names
 * no composition root itself: src/app assembles the schema with the API's section in it.
 */
import type { ConfigProblem } from '../config/problems.ts';
import type { ResolvedCandidate } from '../config/secret-file.ts';
import type { ConnectorConfig } from '../connector/config.ts';
import type { Lang, Text } from '../i18n/index.ts';
import type { ConnectionConfig } from '../identity/config.ts';
import type { NotifyConfig } from '../notify/config.ts';
import type { RelayConfig } from '../relay/config.ts';
import type { ApiConfig } from './config.ts';
import type { Identity } from '../identity/index.ts';
import type { Metrics } from '../metrics/index.ts';
import type { EgressPolicy } from '../net/egress.ts';
import type { WatchService } from '../notify/watchers/service.ts';
import type { Sink } from '../notify/sinks/types.ts';
import type { RelayService } from '../relay/transports/service.ts';
import type { NotifyRepository } from '../store/notify.ts';
import type { Store } from '../store/index.ts';
import type { NodeIdentity } from '../cluster/node.ts';
import { MbError } from '../errors/index.ts';

/** The subscriptions routes' part of the notify service. */
export interface SubscriptionsContext {
  /** The notify repository that seals subscribers' secrets at rest. */
  repo: NotifyRepository;
  sinks: ReadonlyMap<string, Sink>;
  /** Mailboxes some watch group watches: a subscription for others gets a warning. */
  watched?: ReadonlySet<string>;
  egress?: Pick<EgressPolicy, 'check'>;
}

/** The sections of mailbridge.yaml the routes read (the gateway passes its whole configuration). */
export interface ApiConfigView {
  connections: Record<string, ConnectionConfig>;
  relay?: RelayConfig | undefined;
  connectors?: Record<string, ConnectorConfig> | undefined;
  notify?: NotifyConfig | undefined;
  api?: ApiConfig | undefined;
  /** Where the gateway is reached (sign-in redirects, the CSRF origin check). */
  server?: { publicUrl?: string | undefined; port?: number } | undefined;
}

/** `config show` and `config check` as the composition root binds them to the whole schema. */
export interface ConfigTools {
  /** The running configuration with every secret masked. */
  masked(): { config: Record<string, unknown>; secrets: Array<{ path: string; encrypted: boolean; unreadable?: string }> };
  /** A candidate file's problems, as `mailbridge config check` finds them. */
  check(text: string, lang: Lang): { errors: ConfigProblem[]; warnings: ConfigProblem[] };
  /** mailbridge.yaml as written (comments kept), every secret and password hash masked: where the console's editor starts. */
  file(): Promise<{ path: string; text: string }>;
  /**
   * A candidate from the editor with each mask replaced by what the file has at its path; with
   * `seal`, secrets typed in clear are sealed with the installation's key (when one exists).
   */
  resolve(text: string, seal: boolean): Promise<ResolvedCandidate>;
}

/** One result of a check run; rendered in the caller's language when read. */
export interface CheckItem {
  /** Stable within a run: connection, check and subject. */
  id: string;
  title: Text;
  /** unverified checks are warn: nothing failed, but it could not be proven from here. */
  status: 'ok' | 'warn' | 'fail' | 'pending';
  error?: MbError;
}

/** What a setup run reports as it goes (the console's wizard shows each step). */
export interface SetupProgress {
  step(step: 'signin' | 'creating' | 'script' | 'checking'): void;
  deviceCode(code: { userCode: string; verificationUri: string }): void;
  app(appId: string): void;
  script(text: string): void;
  check(item: CheckItem): void;
}

/** What applying a configuration did: restarted and needsRestart name sections or settings (relay, notify.watch, api.keys). */
export interface ApplyResult {
  applied: boolean;
  restarted: string[];
  needsRestart: string[];
}

/** Check runs, setup runs and config apply, bound by the gateway (src/server/ops.ts) to what it runs. */
export interface OpsTools {
  /** The checks of `mailbridge check` for a connection (all when undefined), each result told as soon as it is known. */
  check(connection: string | undefined, onResult: (item: CheckItem) => void): Promise<void>;
  /** `mailbridge setup <connection>`: admin sign-in by device code, the app, the Exchange script, then the checks. */
  setup(o: { connection: string; credential?: 'certificate' | 'secret'; lang: Lang }, progress: SetupProgress): Promise<void>;
  /** Write `text` as mailbridge.yaml (it was validated) and restart what changed. */
  apply(text: string, lang: Lang): Promise<ApplyResult>;
}

export interface ApiContext {
  config: ApiConfigView;
  configTools?: ConfigTools;
  store: Store;
  /** Path of mailbridge.yaml (config show names it; config validate resolves relative paths against it). */
  configPath?: string;
  keyFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
  relay?: RelayService;
  identity?: Identity;
  metrics?: Metrics;
  watch?: WatchService;
  subscriptions?: SubscriptionsContext;
  ops?: OpsTools;
  /** This process among the nodes sharing the store (GET /api/v1/nodes marks it). */
  node?: NodeIdentity;
  now?: () => number;
}

export function need<T>(value: T | undefined, section: string, path: string): T {
  if (value === undefined) throw new MbError('MB_API_NOT_CONFIGURED', { section, path });
  return value;
}
