#!/usr/bin/env bash
# pg-cdc-tail draining a pre-filled log of N changes (default 1,000,000) to
# /dev/null, against the floor: plain psql COPYing the same log rows out.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}

pg_start >/dev/null
trap pg_destroy EXIT
createdb bench
sql -d bench -f "$TOP/sql/cdc.sql" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
echo "filling the log with $N changes..." >&2
sql -d bench -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
	SELECT gen_random_uuid(), gen_random_uuid(), 'created', g, 'EUR', 'DE'
	FROM generate_series(1, $N) g"
sql -d bench -c "VACUUM ANALYZE orders_cdc_log"

header "pg-cdc-tail drain ($N changes)"
measure psql "psql -X -d bench -c 'COPY (SELECT id, txid, op, ts, key, before, after FROM orders_cdc_log ORDER BY id) TO STDOUT' >/dev/null"
ref=$SECS
row "psql COPY of the log (floor)" "$N"
measure tail "pg-cdc-tail -d bench -t orders -n bench >/dev/null"
row "pg-cdc-tail" "$N"
got=$(pg-cdc-tail -d bench -t orders -n check | wc -l)
[ "$got" -eq "$N" ] || { echo "bench: pg-cdc-tail emitted $got of $N" >&2; exit 1; }
awk -v a="$ref" -v b="$SECS" 'BEGIN { printf "pg-cdc-tail / psql COPY speed ratio: %.2f\n", a / b }'
