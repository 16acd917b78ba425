#!/usr/bin/env bash
# The source's cost of capture: order-sim's write rate (4 clients, half the
# changes updates) with no capture, with trigger capture followed by
# pg-cdc-tail -f, with a logical slot streamed by a following pg-cdc-tail,
# and the floor of trigger capture: the same writes with a bare row trigger
# inserting the same bytes (op, key, before and after JSON) into a table with
# no index, no default and no reader.  Best of ROUNDS (3): the machine is
# shared, the fastest run is the one least disturbed.
#
# Beside each rate, the CPU time the whole cluster (postmaster, backends,
# background processes) and the reader spent per change: on a 2-core machine
# shared with other work the rate is noisy, the CPU per change much less so.
#
# DETAIL=1 adds trigger capture with no reader (what the triggers cost alone),
# the same less its log's indexes and its NOTIFY (what a log nobody can read
# at once would cost), and the floor with the columns a reader needs beside
# the bytes (an identity, the txid, a time).
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
	-- the same, with the columns any reader of a log needs beside the bytes:
	-- an order (an identity), the writing transaction (for snapshots) and a
	-- time; still no index, no reader
	CREATE TABLE floor_cols_log (id bigint GENERATED ALWAYS AS IDENTITY, txid xid8 DEFAULT pg_current_xact_id(),
		ts timestamptz DEFAULT clock_timestamp(), op "char", key json, before json, after json);
	CREATE FUNCTION floor_cols_capture() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF TG_OP = 'INSERT' THEN
			INSERT INTO floor_cols_log (op, key, before, after) VALUES ('c', json_build_object('id', NEW.id), NULL, row_to_json(NEW));
		ELSIF TG_OP = 'DELETE' THEN
			INSERT INTO floor_cols_log (op, key, before, after) VALUES ('d', json_build_object('id', OLD.id), row_to_json(OLD), NULL);
		ELSE
			INSERT INTO floor_cols_log (op, key, before, after) VALUES ('u', json_build_object('id', NEW.id), row_to_json(OLD), row_to_json(NEW));
		END IF;
		RETURN NULL;
	END $$;
SQL

# CPU ticks of the whole cluster so far: the postmaster with the children it
# reaped (cutime, cstime), and its live children
cluster_ticks() {
	local pm
	pm=$(head -n 1 "$PGTEST_DIR/data/postmaster.pid")
	# shellcheck disable=SC2046
	cat /proc/"$pm"/stat $(ps -o pid= --ppid "$pm" | sed 's|^ *\(.*\)|/proc/\1/stat|') 2>/dev/null |
		awk '{ sub(/^.*\) /, ""); t += $12 + $13 + $14 + $15 } END { print t }'
}
# CPU ticks a live process spent
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# order-sim's rate ("... changes/s" at the end of its summary line) and the
# cluster's CPU per change meanwhile, in microseconds
sim_rate() {
	local t0 rate
	t0=$(cluster_ticks)
	rate=$(order-sim -d bench --clients 4 --count "$SIM" --rate 0 --update-ratio 0.5 --seed "$1" 2>&1 |
		sed -n 's/.* \([0-9.]*\) changes\/s$/\1/p')
	# the backends that ended are reaped (and counted) by the postmaster
	sleep 0.2
	echo "$rate $(( ($(cluster_ticks) - t0) * TICK_US / SIM ))"
}
# the reader's CPU per change (pid), in microseconds
reader_us() { echo $(( $(proc_ticks "$1") * TICK_US / SIM )); }

# every run starts from empty tables, no capture, and a checkpoint behind it
none() {
	sql -d bench -c "SET client_min_messages = warning; DROP TRIGGER IF EXISTS floor_capture ON orders;
		DROP TRIGGER IF EXISTS floor_cols_capture ON orders;
		TRUNCATE orders, orders_cdc_log, floor_log, floor_cols_log; SELECT cdc.disable('orders');
		DELETE FROM cdc.consumer; CHECKPOINT" >/dev/null
}
run_none() { none; sim_rate "$1"; }
run_floor() {
	none
	sql -d bench -c "CREATE TRIGGER floor_capture AFTER INSERT OR UPDATE OR DELETE ON orders
		FOR EACH ROW EXECUTE FUNCTION floor_capture()" >/dev/null
	sim_rate "$1"
}
run_floor_cols() {
	none
	sql -d bench -c "CREATE TRIGGER floor_cols_capture AFTER INSERT OR UPDATE OR DELETE ON orders
		FOR EACH ROW EXECUTE FUNCTION floor_cols_capture()" >/dev/null
	sim_rate "$1"
}
# trigger capture with no reader, less what makes its log readable and
# followed: the primary key, the txid and schema indexes, the NOTIFY
run_stripped() {
	none
	sql -d bench >/dev/null 2>&1 <<-'SQL'
		SELECT cdc.enable('orders');
		ALTER TABLE orders_cdc_log DROP CONSTRAINT orders_cdc_log_pkey;
		DROP INDEX orders_cdc_log_txid, orders_cdc_log_schema;
		DO $$ BEGIN
			EXECUTE regexp_replace(pg_get_functiondef('orders_cdc_capture'::regproc),
			                       'woken := pg_notify[^;]*;', '');
		END $$;
	SQL
	sim_rate "$1"
	# as they were, for the runs after it
	sql -d bench -c "TRUNCATE orders_cdc_log; ALTER TABLE orders_cdc_log ADD PRIMARY KEY (id);
		SELECT cdc.enable('orders')" >/dev/null 2>&1
}
run_logical() {
	local rate pid us
	none
	pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub -t orders --create-slot 2>/dev/null
	pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --publication=bench_pub -f >/dev/null &
	pid=$!
	rate=$(sim_rate "$1")
	us=$(reader_us $pid)
	kill -TERM $pid
	wait $pid || true
	pg-cdc-tail -d bench --mode=logical --slot=$LSLOT --drop-slot 2>/dev/null
	echo "$rate $us"
}
run_trigger() {
	local rate pid us
	none
	sql -d bench -c "SELECT cdc.enable('orders')" >/dev/null 2>&1
	pg-cdc-tail -d bench -t orders -n follow -f >/dev/null &
	pid=$!
	rate=$(sim_rate "$1")
	us=$(reader_us $pid)
	kill -TERM $pid
	wait $pid || true
	echo "$rate $us"
}
run_unfollowed() {
	none
	sql -d bench -c "SELECT cdc.enable('orders')" >/dev/null 2>&1
	sim_rate "$1"
}
kinds=${KINDS:-none floor trigger logical}
[ "${DETAIL:-0}" = 1 ] && kinds="$kinds unfollowed stripped floor_cols"
declare -A top=() srv=() rdr=()
for kind in $kinds; do top[$kind]=0; srv[$kind]=; rdr[$kind]=0; done
# the least of a figure over the rounds: the run least disturbed
least() { [ -z "$1" ] || [ "$2" -lt "$1" ] && echo "$2" || echo "$1"; }
for round in $(seq "$ROUNDS"); do
	for kind in $kinds; do
		read -r r c t <<<"$("run_$kind" "$round")"
		[ -n "$r" ] || { echo "bench: order-sim under $kind capture gave no rate" >&2; exit 1; }
		awk -v a="$r" -v b="${top[$kind]}" 'BEGIN { exit !(a > b) }' && top[$kind]=$r
		srv[$kind]=$(least "${srv[$kind]}" "$c")
		[ "$round" = 1 ] && rdr[$kind]=$t || rdr[$kind]=$(least "${rdr[$kind]}" "$t")
	done
done

declare -A label=(
	[none]="no capture"
	[floor]="floor: bare insert of the same bytes"
	[floor_cols]="floor with id, txid and ts columns"
	[trigger]="trigger capture, followed"
	[logical]="logical capture, followed"
	[unfollowed]="trigger capture, no reader"
	[stripped]="  less its indexes and NOTIFY"
)
# overhead KIND: the write rate lost against no capture, in percent
overhead() { awk -v b="${top[none]}" -v r="${top[$1]}" 'BEGIN { printf "%.1f", (b - r) * 100 / b }'; }
printf "%-40s %10s %9s %12s %10s\n" "source write rate (order-sim, 4 clients)" "changes/s" \
	"overhead" "server us/ch" "reader us"
printf "%-40s\n" "$SIM changes, best of $ROUNDS (load $(cut -d ' ' -f 1 /proc/loadavg))"
for kind in $kinds; do
	printf "%-40s %10.0f %8s%% %12d %10d\n" "${label[$kind]}" "${top[$kind]}" \
		"$(overhead "$kind")" "${srv[$kind]}" "${rdr[$kind]:-0}"
done
goal "trigger capture overhead" "$(overhead trigger)%" \
	"no capture $(printf '%.0f' "${top[none]}") changes/s; floor $(overhead floor)%" "<= 25% (or the floor)"
goal "logical capture overhead" "$(overhead logical)%" \
	"no capture $(printf '%.0f' "${top[none]}") changes/s" "comparison"
