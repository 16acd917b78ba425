#!/usr/bin/env bash
# The whole pipeline as a user runs it, cdc-source and cdc-sink, on a
# throwaway PostgreSQL with durable commits (a source and a warehouse
# database) and a real Kafka broker (topics of 3 partitions):
#
#   drain    N changes (default 1,000,000: 80% inserts, 15% updates, 5%
#            deletes, in transactions of 1,000) already in the source log, from
#            the start of both halves until the warehouse holds them all:
#            events/s end to end, best of RUNS (2), against each stage alone
#            and each half alone on the same changes (pg-cdc-tail with
#            --schema-events, as cdc-source runs it); where the CPU of the
#            fastest drain went per change (each stage, PostgreSQL, the
#            broker), the speed that allows on the machine's cores, and how
#            busy the machine was meanwhile;
#   latency  order-sim at each of LATENCY_RATES changes/s ("1000 10000") from
#            LATENCY_CLIENTS connections (4, and one more per 500/s over
#            2,000/s: 20 at 10,000/s) for LATENCY_SECONDS (60), after
#            LATENCY_WARMUP seconds (5) of the same, each rate on databases
#            and a topic of its own: the latency from the source commit to the
#            warehouse commit (track_commit_timestamp; the source commits with
#            synchronous_commit=on) of every change, p50/p90/p99/max, split
#            at the time kafka-pub produced it (the Kafka message timestamp);
#            a plot of it over time in PLOT_DIR/latency-RATE.png
#            (build/bench), its data beside it;
#
# and the peak RSS (VmHWM, read before the stages stop) of each of the four
# stages in every kind of run.  N=0 skips the drain, LATENCY_SECONDS=0 the
# latency run.  CDC_TAIL_OPTS, CDC_PUB_OPTS, CDC_SUB_OPTS and CDC_UPSERT_OPTS
# reach the stages, as with cdc-source and cdc-sink.  The figures are printed,
# not judged: a shared machine makes them noisy, hence the load average at the
# end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/lib/kafka.bash"
N=${1:-1000000}
RUNS=${RUNS:-2}
LATENCY_SECONDS=${LATENCY_SECONDS:-60}
LATENCY_RATES=${LATENCY_RATES:-${LATENCY_RATE:-1000 10000}}
LATENCY_MODES=${LATENCY_MODES:-trigger logical}
LATENCY_WARMUP=${LATENCY_WARMUP:-5}
PLOT_DIR=${PLOT_DIR:-$TOP/build/bench}
STAGES="pg-cdc-tail kafka-pub kafka-sub pg-upsert"
# a stage that does not stop is killed sooner than a service's 30 s
export CDC_STOP_TIMEOUT=10

work=$(mktemp -d)
source_pid='' sink_pid=''
cleanup() {
	local p
	for p in $source_pid $sink_pid; do kill -TERM "$p" 2>/dev/null || :; done
	for p in $source_pid $sink_pid; do wait "$p" 2>/dev/null || :; done
	kafka_destroy
	pg_destroy
	rm -rf "$work"
}
trap cleanup EXIT
pg_start fsync=on synchronous_commit=on full_page_writes=on track_commit_timestamp=on >/dev/null
# the full JIT: the brokers of the tests start fast, this one must run fast
KAFKA_JAVA_OPTS="-XX:+UseSerialGC" KAFKA_HEAP_OPTS="-Xms512m -Xmx1g" kafka_start >/dev/null
# the first consumer group creates __consumer_offsets: not what is measured
echo '{}' | kcat -b "$KAFKA_BROKERS" -P -t warm
kafka-sub -t warm -g warm -o beginning -e >/dev/null
createdb warehouse
sql -d warehouse -f "$TOP/tests/lib/fct-orders-soft.sql" >/dev/null

# number FILE: the count in an ack file, 0 while there is none
number() {
	local n=0
	{ read -r n <"$1"; } 2>/dev/null || :
	echo "${n:-0}"
}

# half_start source|sink NAME DB: cdc-source (from database DB) or cdc-sink
# (into DB), topic, consumer name and group NAME, state and logs in
# $work/NAME; notes the pids of its stages in pid[STAGE]
declare -A pid hwm cpu
half_start() {
	local d=$work/$2 p s i
	mkdir -p "$d"
	if [ "$1" = source ]; then
		CDC_SOURCE="dbname=$3" CDC_TABLE=orders CDC_NAME=$2 CDC_TOPIC=$2 CDC_STATE_DIR=$d \
			cdc-source 2>"$d/source.log" &
		p=$! source_pid=$!
		set -- pg-cdc-tail kafka-pub
	else
		CDC_WAREHOUSE="dbname=$3" CDC_TARGET=analytics.fct_orders CDC_GROUP=$2 CDC_TOPIC=$2 CDC_STATE_DIR=$d \
			cdc-sink 2>"$d/sink.log" &
		p=$! sink_pid=$!
		set -- kafka-sub pg-upsert
	fi
	for s; do
		pid[$s]=''
		for i in $(seq 200); do
			pid[$s]=$(pgrep -P "$p" -x "$s") && break
			sleep 0.05
		done
		[ -n "${pid[$s]}" ] || { echo "bench: $s did not start" >&2; tail -n 5 "$d"/*.log >&2; exit 1; }
	done
}

# pipeline_start NAME SOURCE WAREHOUSE: both halves
pipeline_start() {
	half_start source "$1" "$2"
	half_start sink "$1" "$3"
}

# alive NAME: the halves started run; their logs' ends otherwise
alive() {
	local p
	for p in $source_pid $sink_pid; do
		kill -0 "$p" 2>/dev/null && continue
		echo "bench: the pipeline stopped" >&2
		tail -n 5 "$work/$1"/*.log >&2
		exit 1
	done
}

# wait_ack FILE COUNT NAME: until the ack file reaches COUNT; a pipeline
# stuck for WAIT_LIMIT seconds (600) is a failure
wait_ack() {
	local limit=$((SECONDS + ${WAIT_LIMIT:-600}))
	while [ "$(number "$1")" -lt "$2" ]; do
		alive "$3"
		if [ "$SECONDS" -ge "$limit" ]; then
			echo "bench: $3: $(number "$1") of $2 lines acknowledged in $1 after ${WAIT_LIMIT:-600} s" >&2
			exit 1
		fi
		sleep 0.05
	done
}

# pipeline_stop NAME RUN: note the peak RSS of each stage running in
# hwm[RUN.STAGE] (the largest over the runs of that kind), then stop the
# halves as a service manager does
pipeline_stop() {
	local s k p st=0
	for s in $STAGES; do
		[ -n "${pid[$s]}" ] || continue
		k=$(awk '/^VmHWM:/ { print $2 }' "/proc/${pid[$s]}/status")
		if [ "$k" -gt "${hwm[$2.$s]:-0}" ]; then hwm[$2.$s]=$k; fi
		cpu[$s]=$(ticks "${pid[$s]}")
		pid[$s]=''
	done
	for p in $source_pid $sink_pid; do kill -TERM "$p"; done
	for p in $source_pid $sink_pid; do wait "$p" || st=1; done
	source_pid='' sink_pid=''
	[ "$st" -eq 0 ] || { echo "bench: the pipeline failed" >&2; tail -n 5 "$work/$1"/*.log >&2; exit 1; }
}

# ticks PID...: the CPU time (user + system, clock ticks) the processes used
ticks() {
	local p t=0
	for p; do
		t=$((t + $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
	done
	echo "$t"
}

# others: the CPU ticks used so far by the PostgreSQL cluster (the postmaster,
# its children, and the children it reaped) and by the Kafka broker, then
# the machine's busy and total ticks (/proc/stat, every core)
others() {
	local pm pg
	pm=$(head -n 1 "$PGTEST_DIR/data/postmaster.pid")
	# shellcheck disable=SC2046
	pg=$(($(sed 's/.*) //' "/proc/$pm/stat" | awk '{ print $14 + $15 }') + $(ticks $(pgrep -P "$pm"))))
	echo "$pg $(ticks "$(cat "$KAFKA_DIR/node1/pid")")" \
		"$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)"
}

# wait_until NAME WHAT CONDITION: until the shell CONDITION holds, for at
# most WAIT_LIMIT seconds (600)
wait_until() {
	local limit=$((SECONDS + ${WAIT_LIMIT:-600}))
	until eval "$3"; do
		alive "$1"
		[ "$SECONDS" -lt "$limit" ] || { echo "bench: $1: no $2 after ${WAIT_LIMIT:-600} s" >&2; exit 1; }
		sleep 0.05
	done
}

# since T0: seconds from EPOCHREALTIME T0 to now
since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }'
}

# faster SECS BEST: SECS is lower than BEST, or there is no BEST yet
faster() {
	[ -z "$2" ] || awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'
}

# same SOURCE WAREHOUSE [DELETED]: the warehouse holds the source's live rows,
# and marks as deleted exactly the rows the source log deleted (or DELETED
# rows, when the source has no log)
cols="id, user_id, status, amount_cents, currency, country, created_at, updated_at, version"
same() {
	local h="count(*) || ' ' || coalesce(sum(hashtext(concat_ws('|', $cols))::numeric), 0)"
	[ "$(sql -d "$1" -c "SELECT $h FROM orders")" = \
		"$(sql -d "$2" -c "SELECT $h FROM analytics.fct_orders WHERE NOT is_deleted")" ] &&
		[ "${3:-$(sql -d "$1" -c "SELECT count(DISTINCT key::text) FROM orders_cdc_log WHERE op = 'd'")}" = \
			"$(sql -d "$2" -c "SELECT count(*) FROM analytics.fct_orders WHERE is_deleted")" ]
}

drain() {
	local ins=$((N * 8 / 10)) upd=$((N * 15 / 100)) del i s t0 secs pub_secs
	local drain_secs='' source_secs='' sink_secs='' drain_cpu='' cpu0 cpu1
	ins=$((ins > 0 ? ins : 1))
	del=$((N - ins - upd))
	createdb source
	sql -d source -f "$TOP/sql/cdc.sql" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
	echo "filling the log with $N changes ($ins inserts, $upd updates, $del deletes)..." >&2
	sql -d source <<-SQL
		CREATE INDEX orders_amount ON orders (amount_cents);
		DO \$\$ BEGIN
			FOR i IN 0 .. ($ins - 1) / 1000 LOOP
				INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
				SELECT gen_random_uuid(), gen_random_uuid(), 'created', g, 'EUR', 'DE'
				FROM generate_series(i * 1000 + 1, least(i * 1000 + 1000, $ins)) g;
				COMMIT;
			END LOOP;
		END \$\$;
		DO \$\$ BEGIN
			FOR i IN 0 .. ($upd - 1) / 1000 LOOP
				UPDATE orders SET status = 'paid'
				WHERE amount_cents BETWEEN i * 1000 + 1 AND least(i * 1000 + 1000, $upd);
				COMMIT;
			END LOOP;
		END \$\$;
		DO \$\$ BEGIN
			FOR i IN 0 .. ($del - 1) / 1000 LOOP
				DELETE FROM orders
				WHERE amount_cents BETWEEN $ins - $del + i * 1000 + 1 AND least($ins - $del + i * 1000 + 1000, $ins);
				COMMIT;
			END LOOP;
		END \$\$;
		VACUUM ANALYZE orders_cdc_log;
		CHECKPOINT;
	SQL
	[ "$(sql -d source -c 'SELECT count(*) FROM orders_cdc_log')" -eq "$N" ] ||
		{ echo "bench: the log holds $(sql -d source -c 'SELECT count(*) FROM orders_cdc_log') changes, not $N" >&2; exit 1; }

	# the whole pipeline, both halves started at once
	for i in $(seq "$RUNS"); do
		createdb -T warehouse "drain$i"
		kafka_topic "drain$i" 3
		read -r -a cpu0 < <(others)
		t0=$EPOCHREALTIME
		pipeline_start "drain$i" source "drain$i"
		wait_ack "$work/drain$i/source.ack" "$N" "drain$i"
		pub_secs=$(since "$t0")
		wait_ack "$work/drain$i/sink-default.ack" "$N" "drain$i"
		secs=$(since "$t0")
		read -r -a cpu1 < <(others)
		pipeline_stop "drain$i" drain
		if faster "$secs" "$drain_secs"; then
			drain_cpu="${cpu[pg-cdc-tail]} ${cpu[kafka-pub]} ${cpu[kafka-sub]} ${cpu[pg-upsert]}"
			drain_cpu+=" $((cpu1[0] - cpu0[0])) $((cpu1[1] - cpu0[1])) $((cpu1[2] - cpu0[2])) $((cpu1[3] - cpu0[3]))"
		fi
		same source "drain$i" || { echo "bench: drain $i: the warehouse differs from the source" >&2; exit 1; }
		awk -v i="$i" -v s="$secs" -v p="$pub_secs" -v n="$N" 'BEGIN {
			printf "drain run %d: %.2f s, %.0f events/s; all in Kafka after %.2f s\n", i, s, n / s, p }' >&2
		if faster "$secs" "$drain_secs"; then drain_secs=$secs; fi
		dropdb "drain$i"
	done

	# each half alone: cdc-source until Kafka has every change, then cdc-sink
	# from the full topic
	for i in $(seq "$RUNS"); do
		createdb -T warehouse "half$i"
		kafka_topic "half$i" 3
		t0=$EPOCHREALTIME
		half_start source "half$i" source
		wait_ack "$work/half$i/source.ack" "$N" "half$i"
		secs=$(since "$t0")
		pipeline_stop "half$i" half
		if faster "$secs" "$source_secs"; then source_secs=$secs; fi
		t0=$EPOCHREALTIME
		half_start sink "half$i" "half$i"
		wait_ack "$work/half$i/sink-default.ack" "$N" "half$i"
		secs=$(since "$t0")
		pipeline_stop "half$i" half
		same source "half$i" || { echo "bench: halves $i: the warehouse differs from the source" >&2; exit 1; }
		if faster "$secs" "$sink_secs"; then sink_secs=$secs; fi
		dropdb "half$i"
	done

	# each stage alone on the same changes: pg-cdc-tail to a file, kafka-pub
	# from it (RUNS times to one topic, which kafka-sub then reads whole),
	# pg-upsert from it into an empty table
	createdb -T warehouse alone
	kafka_topic alone 3
	header "pipeline drain, $N changes"
	# with --schema-events, as cdc-source runs it: one "s" line more
	best pg-cdc-tail "$RUNS" "pg-cdc-tail -d source -t orders -n alone\$RANDOM --schema-events >'$work/events'"
	row "pg-cdc-tail --schema-events > file" "$N"
	alone_secs[0]=$SECS alone_n[0]=$N hwm[alone.pg-cdc-tail]=$RSS_KB
	[ "$(wc -l <"$work/events")" -eq "$((N + 1))" ] ||
		{ echo "bench: pg-cdc-tail emitted $(wc -l <"$work/events") lines, not $((N + 1))" >&2; exit 1; }
	# what the schema events cost the capture
	best pg-cdc-tail "$RUNS" "pg-cdc-tail -d source -t orders -n alone\$RANDOM >/dev/null"
	row "pg-cdc-tail > /dev/null (no schema events)" "$N"
	best kafka-pub "$RUNS" "kafka-pub -t alone -k key <'$work/events'"
	row "kafka-pub -k key < file" "$N"
	alone_secs[1]=$SECS alone_n[1]=$N hwm[alone.kafka-pub]=$RSS_KB
	best kafka-sub "$RUNS" "kafka-sub -t alone -g alone\$RANDOM -o beginning -e >/dev/null"
	row "kafka-sub -e > /dev/null" "$((N * RUNS))"
	alone_secs[2]=$SECS alone_n[2]=$((N * RUNS)) hwm[alone.kafka-sub]=$RSS_KB
	best pg-upsert "$RUNS" "psql -X -q -d alone -c 'TRUNCATE analytics.fct_orders' &&
		pg-upsert -d alone -t analytics.fct_orders <'$work/events'"
	row "pg-upsert < file" "$N"
	alone_secs[3]=$SECS alone_n[3]=$N hwm[alone.pg-upsert]=$RSS_KB
	dropdb alone
	# memory of a half or the whole: the sum of its stages' peaks
	SECS=$source_secs RSS_KB=$((${hwm[half.pg-cdc-tail]} + ${hwm[half.kafka-pub]}))
	row "cdc-source alone, log to Kafka" "$N"
	SECS=$sink_secs RSS_KB=$((${hwm[half.kafka-sub]} + ${hwm[half.pg-upsert]}))
	row "cdc-sink alone, Kafka to warehouse" "$N"
	SECS=$drain_secs RSS_KB=0
	for s in $STAGES; do RSS_KB=$((RSS_KB + ${hwm[drain.$s]})); done
	row "cdc-source + cdc-sink, end to end" "$N"
	local slow rate worst ratio
	read -r slow worst < <(awk -v a="${alone_secs[*]}" -v c="${alone_n[*]}" -v names="$STAGES" 'BEGIN {
		split(a, t, " "); split(c, k, " "); split(names, nm, " ")
		for (i = 1; i <= 4; i++) if (k[i] / t[i] < best || best == "") { best = k[i] / t[i]; slow = nm[i] }
		printf "%s %.0f\n", slow, best }')
	rate=$(awk -v n="$N" -v s="$drain_secs" 'BEGIN { printf "%.0f", n / s }')
	ratio=$(awk -v r="$rate" -v w="$worst" 'BEGIN { printf "%.2f", r / w }')
	awk -v n="$N" -v s="$drain_secs" -v a="${alone_secs[*]}" -v c="${alone_n[*]}" -v r="$ratio" \
		-v slow="$slow" -v sink="$sink_secs" 'BEGIN {
		split(a, t, " "); split(c, k, " ")
		for (i = 1; i <= 4; i++) sum += t[i] / k[i]
		printf "%-58s %.2f\n", "end-to-end events/s / slowest stage alone (" slow "):", r
		printf "%-58s %.2f\n", "end-to-end events/s / the four stages one after another:", (n / s) * sum
		printf "%-58s %.2f\n", "end-to-end events/s / cdc-sink alone:", sink / s }'
	cpu_table "$drain_cpu" "$drain_secs"
	goal "end to end drain" "$(commas "$rate") ev/s" "slowest stage alone ($slow) $(commas "$worst") ev/s" \
		">= 120,000/s and >= 0.9x"
	goal "end-to-end / slowest stage" "${ratio}x" "$slow alone $(commas "$worst") ev/s" ">= 0.9x"
}

# cpu_table "STAGE1..4 PG BROKER BUSY ALL" SECS: where the CPU of the fastest
# end-to-end drain went, per change, and the speed the whole machine's
# cores would allow if the pipeline had them to itself
cpu_table() {
	echo
	awk -v c="$1" -v n="$N" -v secs="$2" -v names="$STAGES" -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" 'BEGIN {
		split(c, t, " "); split(names, nm, " ")
		nm[5] = "PostgreSQL (source and warehouse)"; nm[6] = "Kafka broker"
		printf "%-40s %10s %12s\n", "CPU of the end-to-end drain", "seconds", "us/change"
		for (i = 1; i <= 6; i++) {
			printf "%-40s %10.2f %12.1f\n", nm[i], t[i] / hz, t[i] / hz / n * 1e6
			sum += t[i] / hz
		}
		printf "%-40s %10.2f %12.1f\n", "all of it", sum, sum / n * 1e6
		printf "%-40s %10.0f ev/s\n", "bound with " cores " cores to itself", n / (sum / cores)
		printf "machine busy during the drain: %.0f%% of %d cores (the pipeline: %.0f%%)\n",
			100 * t[7] / t[8], cores, 100 * sum / (secs * cores) }'
}

# commas N: N with thousands separators
commas() {
	echo "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'
}

# sim DB RATE SECONDS: order-sim's load on a latency run's source; adds the
# changes it committed to written
sim() {
	order-sim -d "$1" --clients "$(clients "$2")" --rate "$2" --duration "$3" \
		--update-ratio 0.3 --delete-ratio 0.05 2>"$work/sim.log" || { cat "$work/sim.log" >&2; exit 1; }
	written=$((written + $(awk '{ print $2; exit }' "$work/sim.log")))
}

# clients RATE: LATENCY_CLIENTS, else 4, and one more per 500 changes/s over
# 2,000/s: a client commits at most once per WAL flush
clients() {
	echo "${LATENCY_CLIENTS:-$(($1 > 2000 ? 4 + ($1 - 2000) / 500 : 4))}"
}

# target RATE: the p99 goal at RATE changes/s, in ms
target() {
	if [ "$1" -le 1000 ]; then echo 25; else echo 100; fi
}

# latency RATE MODE: the latency run at RATE changes/s with pg-cdc-tail in
# MODE (trigger or logical), on databases (latRATEMODE, its warehouse
# latRATEMODEwh), topic and state of its own
latency() {
	local r=$1 mode=$2 name=lat$1$2 src=lat$1$2 wh=lat$1$2wh total applied secs got written=0
	local tail_opts=${CDC_TAIL_OPTS:-}
	createdb "$src"
	sql -d "$src" -f "$TOP/sql/cdc.sql" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
	if [ "$mode" = logical ]; then
		# from the WAL: no capture trigger, no change log
		sql -d "$src" -c "SELECT cdc.disable('public.orders')" >/dev/null 2>&1
		export CDC_TAIL_OPTS="$tail_opts --mode=logical --slot=$name --publication=$name --create-slot"
	fi
	createdb -T warehouse "$wh"
	# each row the warehouse applies, with its transaction, for the commit time
	sql -d "$wh" >/dev/null <<-'SQL'
		CREATE TABLE bench_applied (pos bigint, xid xid8);
		CREATE FUNCTION bench_applied() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO bench_applied VALUES (NEW.cdc_pos, pg_current_xact_id());
			RETURN NULL;
		END $$;
		CREATE TRIGGER bench_applied AFTER INSERT OR UPDATE ON analytics.fct_orders
			FOR EACH ROW EXECUTE FUNCTION bench_applied();
	SQL
	kafka_topic "$name" 3
	pipeline_start "$name" "$src" "$wh"
	CDC_TAIL_OPTS=$tail_opts
	[ "$mode" != logical ] ||
		WAIT_LIMIT=60 wait_until "$name" "the slot" \
			"[ \"\$(sql -d $src -c \"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$name'\")\" = 1 ]"
	# one change through, so every stage is connected and assigned its
	# partitions; the sink's lines are the changes and one schema event
	sql -d "$src" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'created', 1, 'EUR', 'DE')"
	written=1
	wait_ack "$work/$name/sink-default.ack" 2 "$name"
	# then LATENCY_WARMUP seconds of the load, not measured: the broker's
	# JIT, the caches and the first checkpoints settle
	if [ "$LATENCY_WARMUP" != 0 ]; then
		sim "$src" "$r" "$LATENCY_WARMUP"
		wait_ack "$work/$name/sink-default.ack" "$((written + 1))" "$name"
	fi
	sql -d "$wh" -c "TRUNCATE bench_applied"
	total=$written
	echo "order-sim: $r changes/s from $(clients "$r") clients for $LATENCY_SECONDS s, $mode mode..." >&2
	sim "$src" "$r" "$LATENCY_SECONDS"
	total=$((written - total))
	sed 's/^/  /' "$work/sim.log" >&2
	wait_ack "$work/$name/sink-default.ack" "$((written + 1))" "$name"
	pipeline_stop "$name" latency

	# every change's source commit (its transaction's commit timestamp) and
	# produce time (the Kafka message's); a change produced twice (at least
	# once) counts at its first; schema events ("s") carry the pos of the
	# change they precede
	sql -d "$src" -c "CREATE TABLE bench_kafka (pos bigint, txid xid8, produced_ms bigint, deleted text)"
	kcat -b "$KAFKA_BROKERS" -C -t "$name" -o beginning -e -q -f '%T %s\n' | awk '
		function num(name,   s) {
			if (!match($0, "\"" name "\": *[0-9]+")) return ""
			s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); return s }
		!/^[0-9]+ \{"op":"s"/ {
			d = "\\N"
			if (/^[0-9]+ \{"op":"d"/ && match($0, /"key":\{[^}]*\}/)) d = substr($0, RSTART + 6, RLENGTH - 6)
			print num("pos") "\t" num("txid") "\t" $1 "\t" d }' |
		sql -d "$src" -c "COPY bench_kafka FROM STDIN"
	same "$src" "$wh" "$(sql -d "$src" -c "SELECT count(DISTINCT deleted) FROM bench_kafka")" ||
		{ echo "bench: latency run at $r/s, $mode mode: the warehouse differs from the source" >&2; exit 1; }
	sql -d "$wh" -c "CREATE TABLE bench_source (pos bigint PRIMARY KEY, committed timestamptz, produced_ms bigint)"
	sql -d "$src" -c "COPY (SELECT pos, pg_xact_commit_timestamp(xid(min(txid::text)::xid8)), min(produced_ms)
		FROM bench_kafka GROUP BY pos) TO STDOUT" |
		sql -d "$wh" -c "COPY bench_source FROM STDIN"
	sql -d "$wh" >/dev/null <<-'SQL'
		CREATE TABLE bench_latency AS
		SELECT a.pos,
			extract(epoch FROM s.committed - min(s.committed) OVER ()) AS t,
			extract(epoch FROM pg_xact_commit_timestamp(xid(a.xid)) - s.committed) * 1000 AS total_ms,
			s.produced_ms - extract(epoch FROM s.committed) * 1000 AS capture_ms,
			extract(epoch FROM pg_xact_commit_timestamp(xid(a.xid))) * 1000 - s.produced_ms AS deliver_ms
		FROM bench_applied a JOIN bench_source s USING (pos);
	SQL
	applied=$(sql -d "$wh" -c "SELECT count(*) FROM bench_latency")
	# the rate order-sim reached: the source's commits per second
	secs=$(sql -d "$wh" -c "SELECT extract(epoch FROM max(committed) - min(committed)) FROM bench_source
		WHERE pos IN (SELECT pos FROM bench_latency)")
	got=$(awk -v n="$total" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
	echo
	echo "commit-to-warehouse latency at $r changes/s ($got/s reached), $mode mode, $applied changes applied of $total written in $LATENCY_SECONDS s"
	printf "%-40s %8s %8s %8s %8s\n" "milliseconds" p50 p90 p99 max
	sql -d "$wh" -F '|' -c "
		SELECT l, p[1], p[2], p[3], m
		FROM (SELECT 1 AS o, 'source commit -> warehouse commit' AS l,
			percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY total_ms) AS p, max(total_ms) AS m FROM bench_latency
		UNION ALL SELECT 2, '  source commit -> kafka-pub produce',
			percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY capture_ms), max(capture_ms) FROM bench_latency
		UNION ALL SELECT 3, '  kafka-pub produce -> warehouse commit',
			percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY deliver_ms), max(deliver_ms) FROM bench_latency) q
		ORDER BY o" | tee "$work/$name.txt" |
		awk -F '|' '{ printf "%-40s %8.1f %8.1f %8.1f %8.1f\n", $1, $2, $3, $4, $5 }'
	echo "(produce: the Kafka message's timestamp, in whole milliseconds)"
	lat_plot "$r" "$mode" "$wh" "$applied"
	awk -F '|' -v r="$(commas "$r")" -v got="$(commas "$got")" -v t="$(target "$r")" -v m="$mode" 'NR == 1 {
		printf "latency p99 @%s/s (%s, sync on)\t%.1f ms\tp50 %.1f ms, %s/s reached\t<= %d ms\n",
			r, m, $4, $2, got, t }' "$work/$name.txt" | {
		IFS=$'\t' read -r name fig ref tgt
		goal "$name" "$fig" "$ref" "$tgt"
	}
}

# lat_plot RATE MODE DB APPLIED: the latency run's data files and plot in
# PLOT_DIR, latency-RATE-MODE.*
lat_plot() {
	local r=$1 mode=$2 db=$3 n=$4 f=$PLOT_DIR/latency-$1-$2
	mkdir -p "$PLOT_DIR"
	{
		echo "# seconds since the first commit, then milliseconds from source commit to:"
		echo "# warehouse commit, kafka-pub produce; from produce to warehouse commit; pos"
		sql -d "$db" -F ' ' -c "SELECT round(t::numeric, 3), round(total_ms::numeric, 2),
			round(capture_ms::numeric, 2), round(deliver_ms::numeric, 2), pos FROM bench_latency ORDER BY t"
	} >"$f.dat"
	{
		echo "# second since the first commit; p50 and p99 of the changes committed in it (ms)"
		sql -d "$db" -F ' ' -c "SELECT s, round(p[1]::numeric, 2), round(p[2]::numeric, 2)
			FROM (SELECT floor(t) AS s, percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY total_ms) AS p
			      FROM bench_latency GROUP BY 1) q ORDER BY s"
	} >"$f-1s.dat"
	gnuplot <<-EOF
		set terminal pngcairo size 1000,560
		set output '$f.png'
		set title "commit-to-warehouse latency, order-sim at $r changes/s, $mode mode ($n changes)"
		set xlabel 'seconds since the first commit'
		set ylabel 'milliseconds'
		set yrange [0:*]
		set key top left
		set grid
		plot '$f.dat' using 1:2 with points pt 7 ps 0.2 lc rgb '#a0a0d0' title 'each change', \
			'$f-1s.dat' using (\$1 + 0.5):2 with lines lw 2 lc rgb '#2060c0' title 'p50 of each second', \
			'' using (\$1 + 0.5):3 with lines lw 2 lc rgb '#c03020' title 'p99 of each second', \
			$(target "$r") with lines dt 2 lc rgb 'black' title 'goal: p99 $(target "$r") ms'
	EOF
	echo "plot: $f.png (data: ${f##*/}.dat, per second: ${f##*/}-1s.dat)"
}

declare -a alone_secs alone_n
load0=$(cut -d ' ' -f 1-3 /proc/loadavg)
if [ "$N" -gt 0 ]; then drain; fi
if [ "$LATENCY_SECONDS" != 0 ]; then
	for m in $LATENCY_MODES; do
		for r in $LATENCY_RATES; do latency "$r" "$m"; done
	done
fi
echo
printf "%-40s %10s %10s %10s %10s\n" "peak RSS (VmHWM), MiB" "alone" "its half" "drain" "latency"
for s in $STAGES; do
	printf "%-40s" "$s"
	for r in alone half drain latency; do
		if [ -n "${hwm[$r.$s]:-}" ]; then
			awk -v k="${hwm[$r.$s]}" 'BEGIN { printf " %10.1f", k / 1024 }'
		else
			printf " %10s" -
		fi
	done
	echo
done
echo "load average: $load0 at the start, $(cut -d ' ' -f 1-3 /proc/loadavg) at the end ($(nproc) cores)"
