#!/bin/sh
# One-shot, in temporalio/admin-tools once the server listens: waits until the cluster
# answers healthy, creates the namespace if it is missing, and registers the runbooks' search
# attributes (contracts.SEARCH_ATTRIBUTES, Keyword) that are missing. The worker registers
# them too at start; doing it here lets the worker run without operator rights.
# Connects with the admin client certificate (mTLS), by flags: the `temporal` CLI's TLS
# environment variables were renamed between releases, its flags were not.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}" "${SEARCH_ATTRIBUTES:?}"
tls_dir=${TLS_DIR:-/etc/temporal/tls}

t() {
  temporal "$@" --address "$TEMPORAL_ADDRESS" \
    --tls-ca-path "$tls_dir/ca.pem" --tls-cert-path "$tls_dir/admin.pem" --tls-key-path "$tls_dir/admin.key" \
    --tls-server-name "${TEMPORAL_TLS_SERVER_NAME:-temporal}"
}

tries=0
until t operator cluster health; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "namespace: the server never became healthy"; exit 1; }
  sleep 3
done

if t operator namespace describe -n "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace: $NAMESPACE exists"
else
  t operator namespace create -n "$NAMESPACE" --retention "${RETENTION:-30d}"
fi

# A namespace just created may take a moment to be usable for search attributes: retry.
listed=""
for name in $(echo "$SEARCH_ATTRIBUTES" | tr ',' ' '); do
  tries=0
  while :; do
    listed=$(t operator search-attribute list -n "$NAMESPACE" 2>/dev/null || true)
    if echo "$listed" | grep -qw "$name"; then
      echo "namespace: search attribute $name registered"
      break
    fi
    t operator search-attribute create -n "$NAMESPACE" --name "$name" --type Keyword || true
    tries=$((tries + 1))
    [ "$tries" -lt 20 ] || { echo "namespace: cannot register search attribute $name"; exit 1; }
    sleep 3
  done
done
echo "namespace: done"
