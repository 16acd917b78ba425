# Fault scenarios for the whole pipeline, run by tests/faults.bats once per
# capture mode: as tests/faults.bats in trigger mode and, through the symbolic
# link tests/faults-logical.bats, in logical mode (the suite exports
# FAULT_MODE at its top, so every test process sees it).
#
# Everything is real: a source and a warehouse PostgreSQL cluster (two, so
# that each can be restarted alone), one Apache Kafka broker, order-sim
# writing with 8 clients, and the halves run as a user runs them, cdc-source
# and cdc-sink from env files, each under a restart loop like systemd's
# Restart=on-failure.  Every scenario ends the same way: order-sim stops, the
# pipeline drains, and the warehouse must equal the source row for row.
#
#   fault_setup_file / fault_teardown_file   clusters and broker, once a file
#   fault_setup / fault_teardown             databases, topic, env files of a test
#   fault_scenario_kill_stage STAGE          kill -9 one stage FAULT_KILLS times
#   fault_scenario_restart_broker [kill]     restart (or crash) the Kafka broker mid-run
#   fault_scenario_restart_pg src|wh [kill]  restart (or crash) one PostgreSQL cluster
#   fault_scenario_poison                    kcat writes bad messages into the topic
#   fault_scenario_sink_group                three partitions, three sinks, one killed
#
# Settings (environment): FAULT_MODE trigger|logical, FAULT_RATE changes a
# second, FAULT_KILLS kills per stage, FAULT_DRAIN_TIMEOUT seconds,
# FAULT_SEED to repeat a run's random choices.

FAULT_MODE=${FAULT_MODE:-trigger}
FAULT_RATE=${FAULT_RATE:-200}
FAULT_KILLS=${FAULT_KILLS:-5}
FAULT_DRAIN_TIMEOUT=${FAULT_DRAIN_TIMEOUT:-120}
FAULT_COLUMNS="id, user_id, status, amount_cents, currency, country, created_at, updated_at, version"

# --- capture mode -----------------------------------------------------------

# fault_tail_opts: pg-cdc-tail's options for FAULT_MODE, the one place the
# capture mode is chosen.
fault_tail_opts() {
	case $FAULT_MODE in
	trigger) echo "--poll=200" ;;
	logical)
		echo "--mode=logical --slot=$FAULT_SLOT --publication=$FAULT_PUBLICATION --create-slot" ;;
	*)
		echo "faults.bash: unknown FAULT_MODE \"$FAULT_MODE\" (trigger or logical)" >&2
		return 1 ;;
	esac
}

# _fault_mode_setup: what the capture mode needs in a test's source database.
# Logical mode: a publication of the orders table, and a slot named per test,
# since slots belong to the whole cluster.
_fault_mode_setup() {
	FAULT_SLOT=faults_$BATS_TEST_NUMBER
	FAULT_PUBLICATION=faults
	[ "$FAULT_MODE" = logical ] || return 0
	src_sql -c "CREATE PUBLICATION $FAULT_PUBLICATION FOR TABLE orders"
}

# _fault_mode_teardown: a slot left behind would hold WAL for the rest of the
# file (the stages are dead by now, so it is not active).
_fault_mode_teardown() {
	[ "$FAULT_MODE" = logical ] || return 0
	src_sql -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = '$FAULT_SLOT'" >/dev/null 2>&1
	return 0
}

# --- clusters, databases ------------------------------------------------------

# fault_pg src|wh COMMAND...: run a pg.bash command (pg_stop, pg_resume,
# pg_restart, pg_kill, pg_destroy) on one of the two clusters.  pg.bash knows
# one cluster at a time, by PGTEST_DIR and PGTEST_OPTS: each is set here.
fault_pg() {
	local which=$1
	shift
	(
		if [ "$which" = src ]; then
			PGTEST_DIR=$FAULT_SRC_DIR PGTEST_OPTS=$FAULT_SRC_OPTS
		else
			PGTEST_DIR=$FAULT_WH_DIR PGTEST_OPTS=$FAULT_WH_OPTS
		fi
		"$@"
	)
}

src_sql() { sql -h "$FAULT_SRC_DIR" -d "$DB" "$@"; }
wh_sql() { sql -h "$FAULT_WH_DIR" -d "$WH" "$@"; }

fault_setup_file() {
	pg_start || return 1
	FAULT_SRC_DIR=$PGTEST_DIR FAULT_SRC_OPTS=$PGTEST_OPTS
	export FAULT_SRC_DIR FAULT_SRC_OPTS
	pg_start || return 1
	FAULT_WH_DIR=$PGTEST_DIR FAULT_WH_OPTS=$PGTEST_OPTS
	export FAULT_WH_DIR FAULT_WH_OPTS
	PGHOST=$FAULT_SRC_DIR make_source_template
	createdb -h "$FAULT_WH_DIR" -T template0 wh_template
	sql -h "$FAULT_WH_DIR" -d wh_template -f "$TOP/tests/lib/fct-orders-soft.sql" >/dev/null
	kafka_start
}

fault_teardown_file() {
	kafka_destroy
	[ -z "${FAULT_SRC_DIR:-}" ] || fault_pg src pg_destroy
	[ -z "${FAULT_WH_DIR:-}" ] || fault_pg wh pg_destroy
}

# fault_setup: a source and a warehouse database, a topic name and a group
# for this test, and the env files of the two halves, which hold everything
# they need (they run with no other environment than PATH).
fault_setup() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgcdc-faults.XXXXXX")
	STATE=$WORK/state
	DB=src_$BATS_TEST_NUMBER
	WH=wh_$BATS_TEST_NUMBER
	TOPIC=faults_$BATS_TEST_NUMBER
	GROUP=sink_$BATS_TEST_NUMBER
	SIM=''
	declare -gA SUP=()
	FAULT_SEED=${FAULT_SEED:-$((RANDOM * 32768 + RANDOM))}
	RANDOM=$FAULT_SEED
	echo "# FAULT_SEED=$FAULT_SEED"
	dropdb -h "$FAULT_SRC_DIR" --if-exists "$DB" 2>/dev/null
	createdb -h "$FAULT_SRC_DIR" -T src_template "$DB"
	dropdb -h "$FAULT_WH_DIR" --if-exists "$WH" 2>/dev/null
	createdb -h "$FAULT_WH_DIR" -T wh_template "$WH"
	_fault_mode_setup
	cat >"$WORK/source.env" <<-EOF
		# the source half of test $BATS_TEST_NUMBER
		CDC_SOURCE="host=$FAULT_SRC_DIR port=5432 user=postgres dbname=$DB"
		CDC_TABLE=orders
		CDC_TOPIC=$TOPIC
		KAFKA_BROKERS=$KAFKA_BROKERS
		CDC_STATE_DIR=$STATE
		CDC_TAIL_OPTS=$(fault_tail_opts)
	EOF
	# The broker's least session timeout: a sink instance that died hands
	# its partitions on after 6 s, not librdkafka's default 45 s.
	cat >"$WORK/sink.env" <<-EOF
		# the sink half of test $BATS_TEST_NUMBER
		CDC_WAREHOUSE="host=$FAULT_WH_DIR port=5432 user=postgres dbname=$WH"
		CDC_TARGET=analytics.fct_orders
		CDC_TOPIC=$TOPIC
		CDC_GROUP=$GROUP
		KAFKA_BROKERS=$KAFKA_BROKERS
		CDC_STATE_DIR=$STATE
		CDC_SUB_OPTS=-X session.timeout.ms=6000
	EOF
}

# fault_teardown: kill whatever the test started, by pid, with everything
# under it.
fault_teardown() {
	local name
	touch "$WORK/stop"
	# (and no "Killed" notices from the shell)
	{
		for name in "${!SUP[@]}"; do
			_fault_kill_tree "${SUP[$name]}"
		done
		[ -z "$SIM" ] || _fault_kill_tree "$SIM"
		wait
	} 2>/dev/null
	_fault_mode_teardown
	rm -rf "$WORK"
}

# _fault_kill_tree PID: SIGKILL the process and all its descendants.  Each is
# stopped before its children are listed, so that none starts another.
_fault_kill_tree() {
	local c
	kill -STOP "$1" 2>/dev/null || return 0
	for c in $(pgrep -P "$1"); do
		_fault_kill_tree "$c"
	done
	kill -KILL "$1" 2>/dev/null
	return 0
}

# --- the halves under a restart loop ------------------------------------------

# _fault_supervise NAME COMMAND...: run COMMAND again each time it fails,
# after 0.2 s, as systemd's Restart=on-failure would, until it exits 0 or the
# test stops; every start is a line of $WORK/NAME.starts, stderr goes to
# $WORK/NAME.err.
_fault_supervise() {
	local name=$1
	shift
	while [ ! -e "$WORK/stop" ]; do
		echo start >>"$WORK/$name.starts"
		"$@" </dev/null >/dev/null 2>>"$WORK/$name.err" && break
		sleep 0.2
	done
}

# fault_start NAME COMMAND...: supervise COMMAND in the background; SUP[NAME]
# is the loop's pid.
fault_start() {
	_fault_supervise "$@" 3>&- &
	SUP[$1]=$!
}

# fault_start_source: cdc-source, supervised as "source", and wait for its stages
fault_start_source() {
	fault_start source env -i PATH="$PATH" cdc-source -e "$WORK/source.env"
	fault_wait_stage source pg-cdc-tail 30
	fault_wait_stage source kafka-pub 30
}

# fault_start_sink [INSTANCE]: cdc-sink instance INSTANCE (default
# "default"), supervised as "sink-INSTANCE"
fault_start_sink() {
	local i=${1:-default}
	fault_start "sink-$i" env -i PATH="$PATH" CDC_INSTANCE="$i" cdc-sink -e "$WORK/sink.env"
	fault_wait_stage "sink-$i" kafka-sub 30
	fault_wait_stage "sink-$i" pg-upsert 30
}

# fault_stage NAME STAGE: the pid of the stage STAGE that the half supervised
# as NAME runs now (its loop's child is the half's script)
fault_stage() {
	local half
	for half in $(pgrep -P "${SUP[$1]}"); do
		pgrep -P "$half" -x "$2" && return 0
	done
	return 1
}

# fault_wait_stage NAME STAGE SECONDS
fault_wait_stage() {
	wait_for "$3" "fault_stage $1 $2 >/dev/null" || {
		echo "$2 of $1 is not running after $3 s" >&2
		fault_show_logs
		return 1
	}
}

# fault_starts NAME: how many times the half supervised as NAME was started
fault_starts() {
	wc -l <"$WORK/$1.starts"
}

# fault_show_logs: the halves' and order-sim's stderr, for a failing test
fault_show_logs() {
	local f
	for f in "$WORK"/*.err; do
		[ -s "$f" ] || continue
		echo "--- ${f##*/} (last 20 lines)"
		tail -n 20 "$f"
	done
}

# --- order-sim ----------------------------------------------------------------

# fault_sim_start: 8 clients writing inserts, updates and deletes until
# fault_sim_stop
fault_sim_start() {
	order-sim -d "host=$FAULT_SRC_DIR port=5432 user=postgres dbname=$DB" \
		--clients 8 --rate "$FAULT_RATE" --update-ratio 0.3 --delete-ratio 0.1 \
		--seed "$FAULT_SEED" </dev/null >/dev/null 2>>"$WORK/order-sim.err" 3>&- &
	SIM=$!
}

# fault_sim_stop: SIGTERM; order-sim finishes its transactions and exits 0
fault_sim_stop() {
	local st=0
	kill -TERM "$SIM"
	wait "$SIM" || st=$?
	SIM=''
	[ "$st" -eq 0 ] || {
		echo "order-sim exited with status $st" >&2
		fault_show_logs
		return 1
	}
}

# --- progress and convergence -----------------------------------------------

# fault_wh_pos / fault_src_changes: counters that grow as the warehouse
# applies changes and as order-sim commits them
fault_wh_pos() {
	wh_sql -c "SELECT coalesce(max(cdc_pos), 0) FROM analytics.fct_orders"
}

fault_src_changes() {
	src_sql -c "SELECT count(*) + coalesce(sum(version), 0) FROM orders"
}

# fault_wait_progress SECONDS: wait until order-sim has committed more and the
# warehouse has applied more than when called: the pipeline flows.
fault_wait_progress() {
	local src wh
	src=$(fault_src_changes 2>/dev/null || echo 0)
	wh=$(fault_wh_pos 2>/dev/null || echo 0)
	wait_for "$1" "[ \"\$(fault_src_changes 2>/dev/null || echo 0)\" -gt $src ] &&
		[ \"\$(fault_wh_pos 2>/dev/null || echo 0)\" -gt $wh ]" || {
		echo "no progress in $1 s" >&2
		fault_show_logs
		return 1
	}
}

# fault_diff: the rows in which the warehouse differs from the source, one
# a line with what is wrong; nothing when they are equal.  The source's rows
# and the ids it deleted (logged by the capture trigger and gone from the
# table) are copied into temporary tables of the warehouse database, then
# compared with EXCEPT both ways: every live source row must be in the
# warehouse, not deleted, with the same values, and nothing else; every
# deleted order must be there marked deleted, and no other.
fault_diff() {
	(
		set -o pipefail
		{
			echo "CREATE TEMP TABLE src AS SELECT $FAULT_COLUMNS FROM analytics.fct_orders LIMIT 0;"
			echo "COPY src FROM STDIN;"
			src_sql -c "COPY (SELECT $FAULT_COLUMNS FROM orders) TO STDOUT"
			echo '\.'
			echo "CREATE TEMP TABLE src_deleted (id uuid);"
			echo "COPY src_deleted FROM STDIN;"
			src_sql -c "COPY (SELECT (key->>'id')::uuid FROM orders_cdc_log WHERE op = 'd'
				EXCEPT SELECT id FROM orders) TO STDOUT"
			echo '\.'
			cat <<-EOF
				SELECT 'not in the warehouse as is', s.* FROM (
					SELECT * FROM src
					EXCEPT SELECT $FAULT_COLUMNS FROM analytics.fct_orders WHERE NOT is_deleted) s
				ORDER BY id;
				SELECT 'in the warehouse, not in the source', w.* FROM (
					SELECT $FAULT_COLUMNS FROM analytics.fct_orders WHERE NOT is_deleted
					EXCEPT SELECT * FROM src) w
				ORDER BY id;
				SELECT 'deleted in the source, not in the warehouse', id FROM (
					SELECT id FROM src_deleted
					EXCEPT SELECT id FROM analytics.fct_orders WHERE is_deleted) d
				ORDER BY id;
				SELECT 'deleted in the warehouse, not in the source', id FROM (
					SELECT id FROM analytics.fct_orders WHERE is_deleted
					EXCEPT SELECT id FROM src_deleted) d
				ORDER BY id;
			EOF
		} | wh_sql
	)
}

fault_converged() {
	local d
	d=$(fault_diff 2>/dev/null) && [ -z "$d" ]
}

# fault_assert_converged: wait (FAULT_DRAIN_TIMEOUT at most) until the
# pipeline has drained into a warehouse equal to the source; print the
# differing rows if it does not.  The comparison must not be of empty sets:
# the source has live, updated and deleted orders.
fault_assert_converged() {
	local i=0 d
	while ! fault_converged; do
		i=$((i + 1))
		[ "$i" -lt $((FAULT_DRAIN_TIMEOUT * 2)) ] || break
		sleep 0.5
	done
	d=$(fault_diff 2>&1) || {
		echo "cannot compare the warehouse with the source: $d"
		return 1
	}
	if [ -n "$d" ]; then
		echo "the warehouse still differs from the source after waiting up to ${FAULT_DRAIN_TIMEOUT} s:" \
			"$(wc -l <<<"$d") rows, the first 40:"
		head -n 40 <<<"$d"
		fault_show_logs
		return 1
	fi
	[ "$(src_sql -c "SELECT count(*) FROM orders WHERE version > 1")" -gt 0 ]
	[ "$(src_sql -c "SELECT count(*) FROM orders_cdc_log WHERE op = 'd'")" -gt 0 ]
}

# fault_dead_letters FILE: the lines a dead-letter file holds, decoded, one
# a line as a JSON string (base64: and the bytes for ones that are not
# UTF-8), sorted and unique: a line may be dead-lettered again after a restart
fault_dead_letters() {
	[ -e "$1" ] || return 0
	jq -r "$_FAULT_UNORIGIN"'if has("line_base64") then "base64:" + .line_base64 else unorigin | tojson end' "$1" |
		sort -u
}

# jq: a record's line without the member kafka that kafka-sub --origin added,
# which must be the record's own topic, partition and offset
_FAULT_UNORIGIN='def unorigin:
	if has("input_line") | not then .line
	elif ({topic, partition, offset} | tojson) as $o | .line | endswith(",\"kafka\":" + $o + "}")
	then .line | sub(",\"kafka\":\\{[^{}]*\\}\\}$"; "}")
	else "a record without its origin: " + tojson end;
'

# fault_assert_no_dead_letters: nothing of the orders stream was refused
fault_assert_no_dead_letters() {
	local f
	for f in "$STATE"/*dead-letters.ndjson; do
		[ -e "$f" ] || continue
		assert_equal "$(head -n 5 "$f")" ""
	done
}

# fault_run FAULT ARGS...: the frame of every scenario: the halves, order-sim
# writing, the fault while changes flow, order-sim stopped, the warehouse
# equal to the source, and no change refused on the way.
fault_run() {
	fault_start_source
	fault_start_sink
	fault_sim_start
	fault_wait_progress 60
	"$@"
	fault_sim_stop
	fault_assert_converged
	fault_assert_no_dead_letters
}

# _fault_pause MIN MAX: sleep a random time between MIN and MAX tenths of a second
_fault_pause() {
	local t=$(($1 + RANDOM % ($2 - $1 + 1)))
	sleep "$((t / 10)).$((t % 10))"
}

# --- the scenarios ------------------------------------------------------------

# _fault_wait_flowing NAME STAGE: wait until the half supervised as NAME runs
# STAGE and this run of the half has made changes durable: its ack file, which
# its feeding stage resets at start, was written since the stage appeared and
# counts lines.  (When the stage appears, the run before has ended: nothing
# else writes the file any more.)
_fault_wait_flowing() {
	local ack=$STATE/$1.ack
	fault_wait_stage "$1" "$2" 60
	touch "$WORK/mark"
	wait_for 60 "[ \"$ack\" -nt \"$WORK/mark\" ] && [ \"\$(cat \"$ack\")\" -gt 0 ]" || {
		echo "$1 has acknowledged nothing in 60 s" >&2
		fault_show_logs
		return 1
	}
}

# _fault_kill_stage NAME STAGE TIMES: TIMES times, once the half flows again,
# wait a random moment and kill the stage with SIGKILL
_fault_kill_stage() {
	local name=$1 stage=$2 times=$3 k=0 pid
	while [ "$k" -lt "$times" ]; do
		_fault_wait_flowing "$name" "$stage"
		_fault_pause 2 15
		pid=$(fault_stage "$name" "$stage") || continue
		kill -KILL "$pid" 2>/dev/null || continue
		k=$((k + 1))
		# its half reaps it and exits; the loop starts a new one
		wait_for 30 "! kill -0 $pid 2>/dev/null"
	done
}

# fault_scenario_kill_stage STAGE: the stage is killed FAULT_KILLS times at
# random moments while order-sim writes, and its half restarted each time
fault_scenario_kill_stage() {
	local name
	case $1 in
	pg-cdc-tail | kafka-pub) name=source ;;
	kafka-sub | pg-upsert) name=sink-default ;;
	*) echo "no stage \"$1\"" >&2; return 1 ;;
	esac
	fault_run _fault_kill_stage "$name" "$1" "$FAULT_KILLS"
	# every kill, and nothing else, made the half restart
	assert_equal "$(fault_starts "$name")" $((FAULT_KILLS + 1))
	assert_equal "$(grep -c "was killed by signal 9" "$WORK/$name.err")" "$FAULT_KILLS"
}

# _fault_restart_broker stop|kill: stop the broker (SIGTERM, a controlled
# shutdown) or crash it (SIGKILL), leave it down a moment, start it again
_fault_restart_broker() {
	_fault_pause 5 15
	if [ "$1" = kill ]; then
		kafka_kill_broker 1
	else
		kafka_stop_broker 1
	fi
	_fault_pause 5 15
	kafka_start_broker 1
	fault_wait_progress 60
}

# fault_scenario_restart_broker [stop|kill]: and the halves ride it out (the
# Kafka tools retry), neither is restarted
fault_scenario_restart_broker() {
	fault_run _fault_restart_broker "${1:-stop}"
	assert_equal "$(fault_starts source) $(fault_starts sink-default)" "1 1"
}

# _fault_restart_pg src|wh stop|kill: stop the cluster (fast: connections
# are cut) or crash it (SIGKILL to the postmaster: crash recovery at the
# start), leave it down a moment, start it again
_fault_restart_pg() {
	_fault_pause 5 15
	if [ "$2" = kill ]; then
		fault_pg "$1" pg_kill
	else
		fault_pg "$1" pg_stop
	fi
	_fault_pause 5 15
	fault_pg "$1" pg_resume 2>/dev/null	# (pg_ctl's note on a stale pid file)
	fault_wait_progress 60
}

# fault_scenario_restart_pg src|wh [stop|kill]: and the halves ride it out
# (pg-cdc-tail reconnects, pg-upsert retries), neither is restarted.  Both
# clusters keep the test setting synchronous_commit=off: what pg-cdc-tail
# emits and what pg-upsert acknowledges must be durable whatever it is.
fault_scenario_restart_pg() {
	fault_run _fault_restart_pg "$1" "${2:-stop}"
	assert_equal "$(fault_starts source) $(fault_starts sink-default)" "1 1"
}

# The poison messages: not JSON, JSON that is not an event, events with values
# the warehouse refuses (the last three), a value with a newline, one that is
# not UTF-8.  kafka-sub dead-letters what would break its output's framing,
# pg-upsert the rest.  (kcat cannot produce an empty value.)
FAULT_POISON_LINES=(
	'not json'
	'{"op":"c","table":"public.orders"'
	'[1,2,3]'
	'{"hello":"world"}'
	'{"op":"c","table":"public.orders","key":{"id":"not a uuid"},"before":null,"after":{"id":"not a uuid","status":"created"},"pos":5}'
	'{"op":"c","table":"public.orders","key":{"id":"00000000-0000-0000-0000-00000000f00d"},"before":null,"after":{"id":"00000000-0000-0000-0000-00000000f00d","amount_cents":"lots"},"pos":6}'
	'{"op":"u","table":"public.orders","key":{"id":"00000000-0000-0000-0000-00000000beef"},"before":null,"after":{"id":"00000000-0000-0000-0000-00000000beef","created_at":"yesterday-ish"},"pos":7}'
)
FAULT_POISON_NEWLINE=$'{"a":\n1}'
FAULT_POISON_BYTES=$'"\xff\xfe"'

_fault_produce() {
	kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -X acks=all "$@"
}

# _fault_failed_events: the lines in analytics.failed_events, as JSON strings
_fault_failed_events() {
	wh_sql -c "SELECT DISTINCT to_json(convert_from(raw_value, 'UTF8'))::text
		FROM analytics.failed_events" | sort
}

# _fault_poison: produce the poison messages with kcat among the changes
# flowing, and a tombstone (skipped, not dead-lettered); wait until each is
# dead-lettered, and see the changes flow on
_fault_poison() {
	local dlq=$STATE/sink-default-dead-letters.ndjson
	_fault_pause 3 10
	printf '%s\n' "${FAULT_POISON_LINES[@]}" | _fault_produce
	printf '%s\x1e' "$FAULT_POISON_NEWLINE" | _fault_produce -D '\x1e'
	printf '%s\n' "$FAULT_POISON_BYTES" | _fault_produce
	printf 'tombstone:\n' | _fault_produce -K : -Z
	wait_for 60 '[ "$(fault_dead_letters "$dlq" | wc -l)" -ge 9 ]' || true
	fault_wait_progress 60
}

# the dead letters expected, as fault_dead_letters prints them
_fault_poison_expected() {
	local l
	for l in "${FAULT_POISON_LINES[@]}" "$FAULT_POISON_NEWLINE"; do
		jq -n --arg l "$l" '$l'
	done
	echo "base64:$(printf '%s' "$FAULT_POISON_BYTES" | base64)"
}

# fault_scenario_poison: every poison message is dead-lettered (once or more:
# delivery is at least once), nothing else is, the events with refused values
# are in analytics.failed_events too, and the orders go on to the warehouse
fault_scenario_poison() {
	local dlq=$STATE/sink-default-dead-letters.ndjson l
	echo "CDC_DLQ_TABLE=analytics.failed_events" >>"$WORK/sink.env"
	fault_start_source
	fault_start_sink
	fault_sim_start
	fault_wait_progress 60
	_fault_poison
	fault_sim_stop
	fault_assert_converged
	assert_equal "$(fault_dead_letters "$dlq")" "$(_fault_poison_expected | sort -u)"
	assert_equal "$(cat "$STATE"/source-dead-letters.ndjson 2>/dev/null)" ""
	# the table holds what the file says pg-upsert refused, and those
	# include the events only the database can refuse
	assert_equal "$(_fault_failed_events)" "$(jq -r 'select(has("input_line")) | .line | tojson' "$dlq" | sort -u)"
	for l in "${FAULT_POISON_LINES[@]:4}"; do
		jq -n --arg l "$l" '$l' |
			grep -qxFf - <(_fault_failed_events | sed 's/,\\"kafka\\":{[^{}]*}}"$/}"/')
	done
}

# fault_scenario_sink_group: three sink instances share a topic of three
# partitions; once each has applied changes, one instance dies with
# everything under it (kill -9, not restarted), and the two left take over
# its partitions
fault_scenario_sink_group() {
	local i
	kafka_topic "$TOPIC" 3
	fault_start_source
	for i in a b c; do
		fault_start_sink "$i"
	done
	fault_sim_start
	wait_for 60 '[ "$(cat "$STATE"/sink-{a,b,c}.ack 2>/dev/null | grep -c "^[1-9]")" -eq 3 ]' || {
		echo "not every sink instance has applied changes" >&2
		fault_show_logs
		return 1
	}
	_fault_pause 2 10
	{
		_fault_kill_tree "${SUP[sink-b]}"
		wait "${SUP[sink-b]}" || true
	} 2>/dev/null
	unset 'SUP[sink-b]'
	fault_wait_progress 60
	fault_sim_stop
	fault_assert_converged
	fault_assert_no_dead_letters
	# the instances left ran on without a failure
	assert_equal "$(fault_starts sink-a) $(fault_starts sink-c)" "1 1"
}
