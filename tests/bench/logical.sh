#!/usr/bin/env bash
# Logical mode against trigger mode on the same workload:
#  - capture: pg-cdc-tail draining N changes (default 1,000,000) in each mode,
#    and pg_recvlogical receiving the same slot's stream as the reference;
#  - source cost: order-sim's write rate with no capture, with the capture
#    triggers, and with a logical slot streamed by a following pg-cdc-tail.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}
SIM=${SIM_CHANGES:-60000}
LSLOT=bench_slot

pg_start >/dev/null
trap 'kill $(jobs -p) 2>/dev/null; pg_destroy' EXIT
createdb bench
sql -d bench -f "$TOP/sql/cdc.sql" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub -t orders --create-slot
sql -d bench -c "SELECT pg_create_logical_replication_slot('recv_slot', 'pgoutput')" >/dev/null
echo "writing $N changes..." >&2
sql -d bench -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
	SELECT gen_random_uuid(), gen_random_uuid(), 'created', g, 'EUR', 'DE'
	FROM generate_series(1, $N) g"
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

# order-sim's rate: "... changes/s" at the end of its summary line
sim_rate() {
	order-sim -d bench --clients 4 --count "$SIM" --rate 0 --update-ratio 0.5 --seed "$1" 2>&1 |
		sed -n 's/.* \([0-9.]*\) changes\/s$/\1/p'
}

echo
printf "%-40s %12s %10s\n" "source write rate (order-sim, $SIM changes)" "changes/s" "overhead"
sql -d bench -c "TRUNCATE orders, orders_cdc_log; SELECT cdc.disable('orders')" >/dev/null
pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --drop-slot
sql -d bench -c "SELECT pg_drop_replication_slot('recv_slot')" >/dev/null
sql -d bench -c "CHECKPOINT" >/dev/null
base=$(sim_rate 1)
printf "%-40s %12.0f %10s\n" "no capture" "$base" "-"

sql -d bench -c "TRUNCATE orders; CHECKPOINT" >/dev/null
pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub -t orders --create-slot
pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub -f >/dev/null &
tailpid=$!
lrate=$(sim_rate 2)
kill -TERM $tailpid
wait $tailpid || true
pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --drop-slot
printf "%-40s %12.0f %9.1f%%\n" "logical slot, followed" "$lrate" "$(awk -v b="$base" -v r="$lrate" 'BEGIN { print (b - r) * 100 / b }')"

sql -d bench -c "TRUNCATE orders; SELECT cdc.enable('orders'); CHECKPOINT" >/dev/null
pg-cdc-tail -d bench -t orders -n follow -f >/dev/null &
tailpid=$!
trate=$(sim_rate 3)
kill -TERM $tailpid
wait $tailpid || true
printf "%-40s %12.0f %9.1f%%\n" "capture triggers, followed" "$trate" "$(awk -v b="$base" -v r="$trate" 'BEGIN { print (b - r) * 100 / b }')"
