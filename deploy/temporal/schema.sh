#!/bin/sh
# One-shot, in temporalio/admin-tools before the server starts: creates the two PostgreSQL
# databases (history and visibility) and brings their schemas to the image's version. Safe to
# run again (temporal-sql-tool of Temporal 1.30): `create` skips an existing database,
# setup-schema -v 0.0 keeps a newer version, update-schema applies only what is missing.
# After temporalio/samples-server's compose/scripts/setup-postgres.sh. admin-tools holds
# temporal-sql-tool, the schemas under /etc/temporal/schema, and busybox's sh and nc; the
# password comes from SQL_PASSWORD.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
port=${DB_PORT:-5432}

until nc -z -w 5 "$POSTGRES_SEEDS" "$port"; do echo "schema: waiting for PostgreSQL"; sleep 2; done

sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$port" --db "$@"; }
for db in temporal temporal_visibility; do
  dir=temporal
  [ "$db" = temporal_visibility ] && dir=visibility
  sql "$db" create
  sql "$db" setup-schema -v 0.0
  sql "$db" update-schema -d "/etc/temporal/schema/postgresql/v12/$dir/versioned"
done
echo "schema: done"
