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

# order-sim's rate: "... changes/s" at the end of its summary line
sim_rate() {
	order-sim -d bench --clients 4 --count "$SIM" --rate 0 --update-ratio 0.5 --seed "$1" 2>&1 |
		sed -n 's/.* \([0-9.]*\) changes\/s$/\1/p'
}

echo
sql -d bench -c "SELECT pg_drop_replication_slot('recv_slot')" >/dev/null
pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --drop-slot 2>/dev/null

# one order-sim run under each kind of capture, best of ROUNDS: the machine is shared
none() { sql -d bench -c "TRUNCATE orders, orders_cdc_log; SELECT cdc.disable('orders'); CHECKPOINT" >/dev/null; }
run_none() { none; sim_rate "$1"; }
run_logical() {
	local rate pid
	none
	pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub -t orders --create-slot 2>/dev/null
	pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub -f >/dev/null &
	pid=$!
	rate=$(sim_rate "$1")
	kill -TERM $pid
	wait $pid || true
	pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --drop-slot 2>/dev/null
	echo "$rate"
}
run_trigger() {
	local rate pid
	none
	sql -d bench -c "SELECT cdc.enable('orders')" >/dev/null 2>&1
	pg-cdc-tail -d bench -t orders -n follow -f >/dev/null &
	pid=$!
	rate=$(sim_rate "$1")
	kill -TERM $pid
	wait $pid || true
	echo "$rate"
}
declare -A top=([none]=0 [logical]=0 [trigger]=0)
for round in $(seq "${ROUNDS:-3}"); do
	for kind in none logical trigger; do
		r=$(run_$kind "$round")
		awk -v a="$r" -v b="${top[$kind]}" 'BEGIN { exit !(a > b) }' && top[$kind]=$r
	done
done
printf "%-40s %12s %10s\n" "source write rate (order-sim, $SIM changes, best of ${ROUNDS:-3})" "changes/s" "overhead"
printf "%-40s %12.0f %10s\n" "no capture" "${top[none]}" "-"
for kind in logical trigger; do
	printf "%-40s %12.0f %9.1f%%\n" "$kind capture, followed" "${top[$kind]}" \
		"$(awk -v b="${top[none]}" -v r="${top[$kind]}" 'BEGIN { print (b - r) * 100 / b }')"
done
