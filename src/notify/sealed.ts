/**
 * Subscription parameters at rest: a webhook's signing secret, a browser's Web Push auth secret and
 * a device token are secrets of the subscriber. They are sealed with the SecretBox (AES-256-GCM,
 * the key file mailbridge.key) before they reach the store, and opened when read, so a copy of the
 * database alone gives none of them away.
 *
 * Strategy: a wrapper around the repository, so the API, the dispatcher and `notify test` keep
 * seeing clear parameters and none of them can forget to seal. The whole parameter object is sealed
 * as one JSON value (`{"$sealed": "enc:v1:…"}`); rows written before sealing existed are read as
 * they are. Opened secrets are registered with the log scrubber (the signing secret), so a
 * delivery error never prints one.
 */
import type { SecretBox } from '../config/secret-box.ts';
import { registerSecret } from '../log/redact.ts';
import type { NotifyRepository, NotifySubscriptionRecord } from '../store/notify.ts';

const SEALED = '$sealed';

export function sealParams(box: Pick<SecretBox, 'seal'>, params: Record<string, unknown>): Record<string, unknown> {
  return { [SEALED]: box.seal(JSON.stringify(params)) };
}

export function openParams(box: Pick<SecretBox, 'open'>, params: Record<string, unknown>): Record<string, unknown> {
  const sealed = params[SEALED];
  const clear = typeof sealed === 'string' ? (JSON.parse(box.open(sealed)) as Record<string, unknown>) : params;
  for (const key of ['secret', 'deviceToken', 'registrationToken']) if (typeof clear[key] === 'string') registerSecret(clear[key]);
  const keys = clear.keys as { auth?: unknown } | undefined;
  if (typeof keys?.auth === 'string') registerSecret(keys.auth);
  return clear;
}

/** The repository with subscription parameters sealed on write and opened on read. */
export function sealedNotifyRepository(repo: NotifyRepository, box: Pick<SecretBox, 'seal' | 'open'>): NotifyRepository {
  const open = <T extends Pick<NotifySubscriptionRecord, 'params'>>(r: T): T => ({ ...r, params: openParams(box, r.params) });
  return {
    ...repo,
    createSubscription: (record) => repo.createSubscription({ ...record, params: sealParams(box, record.params) }),
    getSubscription: async (id) => {
      const r = await repo.getSubscription(id);
      return r && open(r);
    },
    listSubscriptions: async (query) => (await repo.listSubscriptions(query)).map(open),
    due: async (now, limit, busy, claim) => (await repo.due(now, limit, busy, claim)).map((d) => ({ ...d, subscription: open(d.subscription) })),
  };
}
