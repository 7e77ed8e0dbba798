#!/bin/sh
# /usr/bin/mailbridge: the CLI with the Node.js 24 that comes with the package (Debian's own nodejs
# is older). It reads /etc/mailbridge/mailbridge.yaml unless --config or MAILBRIDGE_CONFIG says
# otherwise. Run by root it runs as the service user `mailbridge`, so that files it writes (the
# database, the relay spool, mailbridge.yaml after `secret set`) stay the service's own.
export MAILBRIDGE_CONFIG="${MAILBRIDGE_CONFIG:-/etc/mailbridge/mailbridge.yaml}"
node=/usr/lib/mailbridge/node_modules/node/bin/node
cli=/usr/lib/mailbridge/bin/mailbridge.mjs
if [ "$(id -u)" = 0 ] && [ -z "${MAILBRIDGE_AS_ROOT:-}" ] && getent passwd mailbridge >/dev/null; then
  HOME=/var/lib/mailbridge exec setpriv --reuid=mailbridge --regid=mailbridge --init-groups -- "$node" "$cli" "$@"
fi
exec "$node" "$cli" "$@"
