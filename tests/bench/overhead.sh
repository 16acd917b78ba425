#!/usr/bin/env bash
# The source's cost of capture: order-sim's write rate (4 clients, half the
# changes updates) with no capture, with trigger capture followed by
# pg-cdc-tail -f, with a logical slot streamed by a following pg-cdc-tail,
# and the floor of trigger capture: the same writes with a bare row trigger
# inserting the same bytes (op, key, before and after JSON) into a table with
# no index, no default and no reader.  Best of ROUNDS (3): the machine is
# shared, the fastest run is the one least disturbed.
#
# DETAIL=1 adds trigger capture with no reader: what the triggers cost alone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIM=${SIM_CHANGES:-60000}
CDC_SQL=${CDC_SQL:-$TOP/sql/cdc.sql}
ROUNDS=${ROUNDS:-3}
LSLOT=bench_slot

pg_start >/dev/null
# kill with no job left fails, and a failing trap would skip pg_destroy
trap 'kill $(jobs -p) 2>/dev/null || true; pg_destroy' EXIT
createdb bench
sql -d bench -f "$CDC_SQL" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
# the floor: what any trigger capture writes, and nothing else
sql -d bench >/dev/null <<-'SQL'
	CREATE TABLE floor_log (op "char", key json, before json, after json);
	CREATE FUNCTION floor_capture() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF TG_OP = 'INSERT' THEN
			INSERT INTO floor_log VALUES ('c', json_build_object('id', NEW.id), NULL, row_to_json(NEW));
		ELSIF TG_OP = 'DELETE' THEN
			INSERT INTO floor_log VALUES ('d', json_build_object('id', OLD.id), row_to_json(OLD), NULL);
		ELSE
			INSERT INTO floor_log VALUES ('u', json_build_object('id', NEW.id), row_to_json(OLD), row_to_json(NEW));
		END IF;
		RETURN NULL;
	END $$;
SQL

# order-sim's rate: "... changes/s" at the end of its summary line
sim_rate() {
	order-sim -d bench --clients 4 --count "$SIM" --rate 0 --update-ratio 0.5 --seed "$1" 2>&1 |
		sed -n 's/.* \([0-9.]*\) changes\/s$/\1/p'
}

# every run starts from empty tables, no capture, and a checkpoint behind it
none() {
	sql -d bench -c "DROP TRIGGER IF EXISTS floor_capture ON orders;
		TRUNCATE orders, orders_cdc_log, floor_log; SELECT cdc.disable('orders');
		DELETE FROM cdc.consumer; CHECKPOINT" >/dev/null
}
run_none() { none; sim_rate "$1"; }
run_floor() {
	none
	sql -d bench -c "CREATE TRIGGER floor_capture AFTER INSERT OR UPDATE OR DELETE ON orders
		FOR EACH ROW EXECUTE FUNCTION floor_capture()" >/dev/null
	sim_rate "$1"
}
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
run_unfollowed() {
	none
	sql -d bench -c "SELECT cdc.enable('orders')" >/dev/null 2>&1
	sim_rate "$1"
}
kinds="none floor trigger logical"
[ "${DETAIL:-0}" = 1 ] && kinds="$kinds unfollowed"
declare -A top=()
for kind in $kinds; do top[$kind]=0; done
for round in $(seq "$ROUNDS"); do
	for kind in $kinds; do
		r=$(run_$kind "$round")
		[ -n "$r" ] || { echo "bench: order-sim under $kind capture gave no rate" >&2; exit 1; }
		awk -v a="$r" -v b="${top[$kind]}" 'BEGIN { exit !(a > b) }' && top[$kind]=$r
	done
done

declare -A label=(
	[none]="no capture"
	[floor]="floor: bare insert of the same bytes"
	[trigger]="trigger capture, followed"
	[logical]="logical capture, followed"
	[unfollowed]="trigger capture, no reader"
)
printf "%-40s %12s %10s\n" "source write rate (order-sim, 4 clients)" "changes/s" "overhead"
printf "%-40s %12s %10s\n" "$SIM changes, best of $ROUNDS" "" ""
for kind in $kinds; do
	printf "%-40s %12.0f %9.1f%%\n" "${label[$kind]}" "${top[$kind]}" \
		"$(awk -v b="${top[none]}" -v r="${top[$kind]}" 'BEGIN { print (b - r) * 100 / b }')"
done
echo "target: trigger capture overhead <= 25%"
