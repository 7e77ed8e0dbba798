/**
 * The egress allow list for tests whose receivers (webhook, Web Push, FCM stand-ins) listen on
 * loopback: production refuses internal targets (src/net/egress.ts), so a test says explicitly
 * that its own loopback receivers are allowed, the way an admin lists an internal receiver.
 */
import { EgressPolicy } from '../../src/net/egress.ts';

/** notify.egress.allow for receivers on this host. */
export const LOOPBACK_RECEIVERS = ['127.0.0.1/32', '::1/128'];

/** The `egress:` section of a notify config for tests with loopback receivers. */
export const loopbackEgressConfig = { allow: LOOPBACK_RECEIVERS };

/** A policy that lets sinks reach loopback receivers (and nothing else internal). */
export function loopbackEgress(): EgressPolicy {
  return new EgressPolicy({ allow: LOOPBACK_RECEIVERS });
}
