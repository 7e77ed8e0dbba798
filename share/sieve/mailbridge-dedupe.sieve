# mailbridge: drop a message the connector delivers a second time.
#
# The connector (mailbridge fetch) hands mail to LMTP or SMTP at least once: when it is killed
# after the server stored a message but before it recorded the server's answer, the next run
# delivers that message again, with the same X-Mailbridge-Delivery-Id header (turn the header on
# with `deliveryIdHeader: true` in the connector's destination). This script keeps the first copy
# and discards any later one with the same ID, so each message is in the mailbox once.
#
# Dovecot with Pigeonhole (Debian: apt install dovecot-sieve), for every LMTP delivery:
#   protocol lmtp { mail_plugins = $mail_plugins sieve }
#   plugin { sieve_before = /etc/dovecot/sieve/mailbridge-dedupe.sieve }
# then `sievec /etc/dovecot/sieve/mailbridge-dedupe.sieve`. The IDs are remembered per mailbox
# (~/.dovecot.lda-dupes) for Pigeonhole's sieve_duplicate_default_period (at most its max period; a
# redelivery follows within minutes).
# Messages without the header are left alone.
require ["duplicate"];

if exists "X-Mailbridge-Delivery-Id" {
  if duplicate :header "X-Mailbridge-Delivery-Id" {
    discard;
    stop;
  }
}
