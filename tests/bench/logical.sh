#!/usr/bin/env bash
# Logical mode against trigger mode on the same workload: pg-cdc-tail
# draining N changes (default 1,000,000) in each mode, and pg_recvlogical
# receiving the same slot's stream as the reference.  What each mode costs
# the source's writers is overhead.sh's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}
LSLOT=bench_slot

pg_start >/dev/null
# kill with no job left fails, and a failing trap would skip pg_destroy
trap 'kill $(jobs -p) 2>/dev/null || true; pg_destroy' EXIT
createdb bench
sql -d bench -f "$TOP/sql/cdc.sql" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub -t orders --create-slot
sql -d bench -c "SELECT pg_create_logical_replication_slot('recv_slot', 'pgoutput')" >/dev/null
echo "writing $N changes in transactions of 1000..." >&2
sql -d bench <<-SQL
	CREATE PROCEDURE fill(n int) LANGUAGE plpgsql AS \$\$
	BEGIN
		FOR i IN 0 .. (n - 1) / 1000 LOOP
			INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
			SELECT gen_random_uuid(), gen_random_uuid(), 'created', g, 'EUR', 'DE'
			FROM generate_series(i * 1000 + 1, least(n, (i + 1) * 1000)) g;
			COMMIT;
		END LOOP;
	END \$\$;
	CALL fill($N);
SQL
sql -d bench -c "VACUUM ANALYZE orders_cdc_log"
end=$(sql -d bench -c "SELECT pg_current_wal_insert_lsn()")

header "capture ($N changes)"
measure recv "pg_recvlogical -d bench -S recv_slot --start --endpos=$end -o proto_version=1 \
	-o publication_names=bench_pub -f /dev/null"
ref=$SECS
row "pg_recvlogical, raw pgoutput (reference)" "$N"
measure logical "pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub >'$PGTEST_DIR/l.out'"
lsecs=$SECS
row "pg-cdc-tail --mode=logical" "$N"
got=$(wc -l <"$PGTEST_DIR/l.out")
rm -f "$PGTEST_DIR/l.out"
[ "$got" -eq "$N" ] || { echo "bench: logical mode emitted $got of $N" >&2; exit 1; }
measure trigger "pg-cdc-tail -d bench -t orders -n bench >/dev/null"
tsecs=$SECS
row "pg-cdc-tail (trigger mode)" "$N"
awk -v r="$ref" -v l="$lsecs" -v t="$tsecs" 'BEGIN {
	printf "logical / pg_recvlogical speed ratio: %.2f; logical / trigger: %.2f\n", r / l, t / l }'

