#!/usr/bin/env bats
# The composed pipeline: cdc-source (pg-cdc-tail | kafka-pub) and cdc-sink
# (kafka-sub | pg-upsert) configured by env files, against a real PostgreSQL
# (a source and a warehouse database) and a real Kafka broker; how they stop,
# fail and restart; their systemd units.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source warehouse kafka
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	WORK=$(mktemp -d)
	STATE=$WORK/state
	TOPIC="orders_cdc_${BATS_TEST_NUMBER}"
	STARTED=()
}

# Stop by pid whatever the test started and left running: the stages first,
# so that no script outlives its stages' parent.
teardown() {
	stop_started
	rm -rf "$WORK"
}

# new_databases: a source database (DB) with the orders table captured and a
# warehouse database (WH) with the analytics schema, and env files for both
# halves that hold everything they need: the scripts run with no other
# environment than PATH.
new_databases() {
	new_source_db
	WH="wh_${BATS_TEST_NUMBER}"
	dropdb --if-exists "$WH" 2>/dev/null
	createdb -T wh_template "$WH"
	cat >"$WORK/source.env" <<-EOF
		# the source half of test $BATS_TEST_NUMBER
		CDC_SOURCE="host=$PGHOST port=$PGPORT user=postgres dbname=$DB"
		CDC_TABLE=orders
		CDC_TOPIC=$TOPIC
		KAFKA_BROKERS=$KAFKA_BROKERS
		CDC_STATE_DIR=$STATE
		CDC_TAIL_OPTS=--poll=200
	EOF
	cat >"$WORK/sink.env" <<-EOF
		# the sink half of test $BATS_TEST_NUMBER
		CDC_WAREHOUSE="host=$PGHOST port=$PGPORT user=postgres dbname=$WH"
		CDC_TARGET=analytics.fct_orders
		CDC_TOPIC=$TOPIC
		CDC_GROUP=sink_$BATS_TEST_NUMBER
		KAFKA_BROKERS=$KAFKA_BROKERS
		CDC_STATE_DIR=$STATE
	EOF
}

# start_source: cdc-source in the background; SOURCE is its pid.
start_source() {
	env -i PATH="$PATH" cdc-source -e "$WORK/source.env" \
		</dev/null >/dev/null 2>>"$WORK/source.err" 3>&- &
	SOURCE=$!
	STARTED+=("$SOURCE")
	wait_stages "$SOURCE" pg-cdc-tail kafka-pub
}

# start_sink [INSTANCE]: cdc-sink in the background; SINK is its pid.
start_sink() {
	local i=${1:-default}
	env -i PATH="$PATH" CDC_INSTANCE="$i" cdc-sink -e "$WORK/sink.env" \
		</dev/null >/dev/null 2>>"$WORK/sink-$i.err" 3>&- &
	SINK=$!
	STARTED+=("$SINK")
	wait_stages "$SINK" kafka-sub pg-upsert
}

# stage PID NAME: the pid of the stage NAME that the script PID runs
stage() {
	pgrep -P "$1" -x "$2"
}

# wait_stages PID NAME...: wait until the script PID runs every stage NAME
wait_stages() {
	local pid=$1 name
	shift
	for name; do
		wait_for 10 "stage $pid $name >/dev/null" || {
			echo "$name did not start under $pid" >&2
			return 1
		}
	done
}

# gone PID...: none of the processes exists any more
gone() {
	local p
	for p; do
		! kill -0 "$p" 2>/dev/null || return 1
	done
}

# wait_exit PID SECONDS: wait for the background job PID to end; its exit
# status becomes STATUS.
wait_exit() {
	wait_for "$2" "gone $1" || return 1
	STATUS=0
	wait "$1" || STATUS=$?
}

COLUMNS_COMPARED="id, user_id, status, amount_cents, currency, country, created_at, updated_at, version"

source_rows() {
	sql -d "$DB" -c "SELECT $COLUMNS_COMPARED FROM orders ORDER BY id"
}

warehouse_rows() {
	sql -d "$WH" -c "SELECT $COLUMNS_COMPARED FROM analytics.fct_orders WHERE NOT is_deleted ORDER BY id"
}

# orders deleted from the source: logged, and no longer there
source_deleted() {
	sql -d "$DB" -c "SELECT (key->>'id')::uuid AS id FROM orders_cdc_log WHERE op = 'd'
		EXCEPT SELECT id FROM orders ORDER BY id"
}

warehouse_deleted() {
	sql -d "$WH" -c "SELECT id FROM analytics.fct_orders WHERE is_deleted ORDER BY id"
}

converged() {
	[ "$(warehouse_rows)" = "$(source_rows)" ] &&
		[ "$(warehouse_deleted)" = "$(source_deleted)" ]
}

# assert_converged SECONDS: the warehouse comes to equal the source, and
# the comparison is not of empty sets
assert_converged() {
	wait_for "$1" converged || true
	assert_equal "$(warehouse_rows)" "$(source_rows)"
	assert_equal "$(warehouse_deleted)" "$(source_deleted)"
	[ "$(source_rows | wc -l)" -gt 0 ]
	[ "$(source_deleted | wc -l)" -gt 0 ]
}

simulate() {
	order-sim -d "$DB" --clients 4 --update-ratio 0.3 --delete-ratio 0.05 -q "$@"
}

@test "cdc-source --help prints the usage and the variables, and exits 0" {
	run --separate-stderr cdc-source --help
	assert_success
	assert_line --index 0 "Usage: cdc-source [-hnV] [-e FILE]..."
	assert_line --partial "CDC_SOURCE         source database conninfo (required)"
	assert_equal "$stderr" ""
}

@test "cdc-sink --help prints the usage and the variables, and exits 0" {
	run --separate-stderr cdc-sink --help
	assert_success
	assert_line --index 0 "Usage: cdc-sink [-hnV] [-e FILE]..."
	assert_line --partial "CDC_WAREHOUSE      warehouse database conninfo (required)"
	assert_equal "$stderr" ""
}

@test "cdc-source and cdc-sink: --help and --version exit 1 when standard output cannot be written" {
	local prog what
	for prog in cdc-source cdc-sink; do
		for what in help version; do
			run --separate-stderr sh -c "$prog --$what >/dev/full"
			assert_failure 1
			assert_equal "$stderr" "$prog: cannot write the $what"
		done
	done
}

@test "without CDC_SOURCE, cdc-source exits 2 with a one-line error and starts nothing" {
	run --separate-stderr env -i PATH="$PATH" CDC_STATE_DIR="$STATE" cdc-source
	assert_failure 2
	assert_equal "$output" ""
	assert_equal "$stderr" "cdc-source: error: CDC_SOURCE is not set: give the source database's conninfo in the environment or an env file (-e)"
	assert_not_exist "$STATE"
}

@test "without CDC_WAREHOUSE, cdc-sink exits 2 with a one-line error and starts nothing" {
	run --separate-stderr env -i PATH="$PATH" CDC_STATE_DIR="$STATE" cdc-sink
	assert_failure 2
	assert_equal "$output" ""
	assert_equal "$stderr" "cdc-sink: error: CDC_WAREHOUSE is not set: give the warehouse database's conninfo in the environment or an env file (-e)"
	assert_not_exist "$STATE"
}

@test "cdc-source requires CDC_TABLE and CDC_TOPIC: no demo names, exit 2 naming the variable" {
	run --separate-stderr env -i PATH="$PATH" CDC_SOURCE=dbname=shop CDC_TOPIC=t CDC_STATE_DIR="$STATE" cdc-source
	assert_failure 2
	assert_equal "$stderr" "cdc-source: error: CDC_TABLE is not set: give the tables to capture in the environment or an env file (-e)"
	run --separate-stderr env -i PATH="$PATH" CDC_SOURCE=dbname=shop CDC_TABLE=orders CDC_STATE_DIR="$STATE" cdc-source -n
	assert_failure 2
	assert_equal "$stderr" "cdc-source: error: CDC_TOPIC is not set: give the Kafka topic (or CDC_TOPIC_PREFIX) in the environment or an env file (-e)"
	assert_equal "$output" ""
	run --separate-stderr env -i PATH="$PATH" CDC_SOURCE=dbname=shop CDC_TABLE=orders CDC_TOPIC=t CDC_TOPIC_PREFIX=p CDC_STATE_DIR="$STATE" cdc-source -n
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "cdc-source: error: CDC_TOPIC and CDC_TOPIC_PREFIX are both set: give one"
	run --separate-stderr env -i PATH="$PATH" CDC_SOURCE=dbname=shop CDC_TABLE=orders CDC_TOPIC=t CDC_SCHEMA_EVENTS=maybe CDC_STATE_DIR="$STATE" cdc-source -n
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'cdc-source: error: CDC_SCHEMA_EVENTS must be yes or no, not "maybe"'
	assert_not_exist "$STATE"
}

@test "cdc-sink requires CDC_TARGET and CDC_TOPIC: no demo names, exit 2 naming the variable" {
	run --separate-stderr env -i PATH="$PATH" CDC_WAREHOUSE=dbname=wh CDC_TOPIC=t CDC_STATE_DIR="$STATE" cdc-sink
	assert_failure 2
	assert_equal "$stderr" "cdc-sink: error: CDC_TARGET is not set: give the target table (or CDC_MAP) in the environment or an env file (-e)"
	run --separate-stderr env -i PATH="$PATH" CDC_WAREHOUSE=dbname=wh CDC_TARGET=analytics.fct_orders CDC_STATE_DIR="$STATE" cdc-sink -n
	assert_failure 2
	assert_equal "$stderr" "cdc-sink: error: CDC_TOPIC is not set: give the Kafka topics in the environment or an env file (-e)"
	run --separate-stderr env -i PATH="$PATH" CDC_WAREHOUSE=dbname=wh CDC_TARGET=analytics.fct_orders CDC_MAP='public.*=analytics.*' CDC_TOPIC=t CDC_STATE_DIR="$STATE" cdc-sink -n
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "cdc-sink: error: CDC_MAP and CDC_TARGET are both set: give one"
	assert_equal "$output" ""
	assert_not_exist "$STATE"
}

@test "usage errors exit 2 with a hint" {
	run --separate-stderr cdc-source --bogus
	assert_failure 2
	assert_equal "$stderr" 'cdc-source: error: unrecognized option "--bogus"
Try "cdc-source --help" for more information.'
	run --separate-stderr cdc-sink -e "$WORK/missing.env"
	assert_failure 2
	assert_equal "$stderr" "cdc-sink: error: cannot read env file \"$WORK/missing.env\"
Try \"cdc-sink --help\" for more information."
	run --separate-stderr env CDC_WAREHOUSE=x CDC_TARGET=t CDC_TOPIC=t CDC_INSTANCE=a/b cdc-sink
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'cdc-sink: error: CDC_INSTANCE names files: it cannot hold "/" ("a/b")'
}

@test "defaults: cdc-source -n prints the pipeline it would run" {
	run --separate-stderr env -i PATH="$PATH" CDC_SOURCE=dbname=shop CDC_TABLE=orders CDC_TOPIC=orders_cdc cdc-source -n
	assert_success
	assert_output "pg-cdc-tail -d dbname=shop -t orders -n cdc-source -f --ack=/var/lib/pgcdc/source.ack --metrics=/var/lib/pgcdc/source-tail.prom --metrics-label=pipeline=source --schema-events |
kafka-pub -t orders_cdc -k key --ack=/var/lib/pgcdc/source.ack --metrics=/var/lib/pgcdc/source-pub.prom --metrics-label=pipeline=source --dlq=/var/lib/pgcdc/source-dead-letters.ndjson"
	run --separate-stderr env -i PATH="$PATH" CDC_SOURCE=dbname=shop CDC_TABLE=orders CDC_TOPIC=orders_cdc \
		STATE_DIRECTORY=/var/lib/x cdc-source -n
	assert_line --index 0 --partial " --ack=/var/lib/x/source.ack --metrics=/var/lib/x/source-tail.prom --metrics-label=pipeline=source --schema-events |"
}

@test "defaults: cdc-sink -n prints the pipeline it would run, per instance" {
	run --separate-stderr env -i PATH="$PATH" CDC_WAREHOUSE=dbname=wh CDC_TARGET=analytics.fct_orders \
		CDC_TOPIC=orders_cdc cdc-sink -n
	assert_success
	assert_output "kafka-sub -t orders_cdc -g cdc-sink --ack=/var/lib/pgcdc/sink-default.ack --dlq=/var/lib/pgcdc/sink-default-dead-letters.ndjson --origin --metrics=/var/lib/pgcdc/sink-default-sub.prom --metrics-label=pipeline=sink-default |
pg-upsert -d dbname=wh -t analytics.fct_orders --ack=/var/lib/pgcdc/sink-default.ack --dlq=/var/lib/pgcdc/sink-default-dead-letters.ndjson --metrics=/var/lib/pgcdc/sink-default-upsert.prom --metrics-label=pipeline=sink-default"
	run --separate-stderr env -i PATH="$PATH" CDC_WAREHOUSE=dbname=wh CDC_TARGET=analytics.fct_orders \
		CDC_TOPIC=orders_cdc CDC_INSTANCE=2 \
		CDC_DLQ_TABLE=analytics.failed_events CDC_UPSERT_OPTS="--batch=100 -v" cdc-sink -n
	assert_success
	assert_line --index 1 "pg-upsert -d dbname=wh -t analytics.fct_orders --ack=/var/lib/pgcdc/sink-2.ack --dlq=/var/lib/pgcdc/sink-2-dead-letters.ndjson --metrics=/var/lib/pgcdc/sink-2-upsert.prom --metrics-label=pipeline=sink-2 --dlq-table=analytics.failed_events --batch=100 -v"
}

@test "an env file holds KEY=VALUE lines: # comments, one pair of matching quotes removed, nothing expanded" {
	cat >"$WORK/a.env" <<-'EOF'
		# a comment
		    # an indented comment

		CDC_SOURCE=host=/run/pg  dbname=shop
		CDC_TABLE=the first file's
		CDC_TABLE="public.orders"
		CDC_NAME='tail 'x'
		CDC_TAIL_OPTS=--poll=100 --batch=10
		CDC_TOPIC="a "b" $c \d"
		CDC_PUB_OPTS="-v'
		CDC_STATE_DIR=/tmp/state dir
		KAFKA_BROKERS=k1:9092,k2:9092
	EOF
	run --separate-stderr env -i PATH="$PATH" cdc-source --env-file="$WORK/a.env" --dry-run
	assert_success
	assert_output "export KAFKA_BROKERS=k1:9092,k2:9092
pg-cdc-tail -d 'host=/run/pg  dbname=shop' -t public.orders -n 'tail '\\''x' -f '--ack=/tmp/state dir/source.ack' '--metrics=/tmp/state dir/source-tail.prom' --metrics-label=pipeline=source --schema-events --poll=100 --batch=10 |
kafka-pub -t 'a \"b\" \$c \\d' -k key '--ack=/tmp/state dir/source.ack' '--metrics=/tmp/state dir/source-pub.prom' --metrics-label=pipeline=source '--dlq=/tmp/state dir/source-dead-letters.ndjson' '\"-v'\\'''"
	assert_equal "$stderr" ""
}

@test "an env file line that is not KEY=VALUE is a usage error naming the file and line" {
	printf '%s\n' '# settings' CDC_SOURCE=dbname=shop 'export CDC_TABLE=orders' >"$WORK/bad.env"
	run --separate-stderr env -i PATH="$PATH" CDC_STATE_DIR="$STATE" cdc-source -e "$WORK/bad.env"
	assert_failure 2
	assert_equal "$stderr" "cdc-source: error: $WORK/bad.env:3: not a KEY=VALUE line
Try \"cdc-source --help\" for more information."
	assert_not_exist "$STATE"
}

@test "a later env file overrides an earlier one, and no env file overrides the environment" {
	printf '%s\n' CDC_SOURCE=dbname=one CDC_TABLE=one CDC_NAME=one >"$WORK/1.env"
	printf '%s\n' CDC_SOURCE=dbname=two CDC_TABLE=two >"$WORK/2.env"
	run --separate-stderr env -i PATH="$PATH" CDC_TABLE=env CDC_NAME= CDC_TOPIC=t \
		cdc-source -e "$WORK/1.env" -e "$WORK/2.env" -n
	assert_success
	assert_line --index 0 --partial "pg-cdc-tail -d dbname=two -t env -n one -f "
}

@test "installed, the scripts find the code they share and pgcdc-pair" {
	make -C "$TOP" -s install DESTDIR="$WORK/root" PREFIX=/opt/pgcdc >/dev/null
	assert_file_exists "$WORK/root/opt/pgcdc/share/pgcdc/pipeline.bash"
	assert_file_executable "$WORK/root/opt/pgcdc/bin/pgcdc-pair"
	: >"$WORK/empty.env"
	run env -i PATH=/usr/bin:/bin "$WORK/root/opt/pgcdc/bin/cdc-sink" -e "$WORK/empty.env"
	assert_failure 2
	assert_output --partial "cdc-sink: error: CDC_WAREHOUSE is not set"
	run env -i PATH=/usr/bin:/bin "$WORK/root/opt/pgcdc/bin/cdc-source" --help
	assert_success
}

@test "cdc-source and two cdc-sink instances, run from env files, bring the warehouse to the source's state" {
	new_databases
	kafka_topic "$TOPIC" 3
	start_source
	start_sink a
	start_sink b
	# a few changes at a time until the group has settled and each instance
	# has applied some through its own ack file
	acked() { [ "$(cat "$STATE/sink-$1.ack" 2>/dev/null || echo 0)" -gt 0 ]; }
	wait_for 30 'simulate --count 10 --rate 0; acked a && acked b'
	simulate --count 2000 --rate 0 --seed 11
	assert_converged 60
	assert_equal "$(cat "$STATE"/*dead-letters.ndjson 2>/dev/null)" ""
	assert_equal "$(cat "$WORK/source.err")" ""
}

@test "pg-upsert killed with -9: cdc-sink exits 1, kafka-sub does not linger, and a restarted cdc-sink converges" {
	new_databases
	kafka_topic "$TOPIC" 1
	start_source
	start_sink
	simulate --count 4000 --rate 2000 --seed 12 3>&- &
	SIM=$!
	STARTED+=("$SIM")
	wait_for 20 '[ "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" -gt 0 ]'
	sub=$(stage "$SINK" kafka-sub)
	kill -9 "$(stage "$SINK" pg-upsert)"
	wait_exit "$SINK" 10
	assert_equal "$STATUS" 1
	gone "$sub"
	assert_equal "$(tail -n 1 "$WORK/sink-default.err")" "cdc-sink: pg-upsert was killed by signal 9"
	start_sink
	wait "$SIM"
	assert_converged 60
}

@test "kafka-sub killed with -9: pg-upsert does not linger, and cdc-sink exits 1" {
	new_databases
	kafka_topic "$TOPIC" 1
	start_source
	start_sink
	simulate --count 500 --rate 0 --seed 13
	wait_for 20 converged
	upsert=$(stage "$SINK" pg-upsert)
	kill -9 "$(stage "$SINK" kafka-sub)"
	wait_exit "$SINK" 10
	assert_equal "$STATUS" 1
	gone "$upsert"
	assert_equal "$(tail -n 1 "$WORK/sink-default.err")" "cdc-sink: kafka-sub was killed by signal 9"
}

@test "kafka-pub killed with -9: cdc-source exits 1 and pg-cdc-tail does not linger" {
	new_databases
	start_source
	tail=$(stage "$SOURCE" pg-cdc-tail)
	kill -9 "$(stage "$SOURCE" kafka-pub)"
	wait_exit "$SOURCE" 10
	assert_equal "$STATUS" 1
	gone "$tail"
	assert_equal "$(tail -n 1 "$WORK/source.err")" "cdc-source: kafka-pub was killed by signal 9"
}

@test "a stage that fails at start makes cdc-source exit 1 at once" {
	new_databases
	echo "CDC_TABLE=no_such_table" >>"$WORK/source.env"
	run --separate-stderr timeout 20 env -i PATH="$PATH" cdc-source -e "$WORK/source.env"
	assert_failure 1
	assert_equal "${stderr_lines[-1]}" "cdc-source: pg-cdc-tail exited with status 1"
}

@test "a stage that ignores SIGTERM is hurried after CDC_STOP_TIMEOUT, killed 5 s later, and cdc-source exits 1" {
	# stand-ins beside a copy of the script, which runs its neighbours first
	mkdir "$WORK/fake"
	cp "$TOP/bin/cdc-source" "$WORK/fake/"
	printf '#!/bin/sh\ntrap "" TERM INT\nexec sleep 1000\n' >"$WORK/fake/pg-cdc-tail"
	printf '#!/bin/sh\nexec cat >/dev/null\n' >"$WORK/fake/kafka-pub"
	chmod +x "$WORK/fake/"*
	env -i PATH="$PATH" PGCDC_LIB="$TOP/scripts/pipeline.bash" CDC_SOURCE=x CDC_TABLE=t CDC_TOPIC=t \
		CDC_STATE_DIR="$STATE" CDC_STOP_TIMEOUT=1 \
		"$WORK/fake/cdc-source" </dev/null 2>"$WORK/err" 3>&- &
	SOURCE=$!
	STARTED+=("$SOURCE")
	wait_stages "$SOURCE" sleep cat
	stages=$(pgrep -P "$SOURCE")
	start=$SECONDS
	kill -TERM "$SOURCE"
	wait_exit "$SOURCE" 15
	assert_equal "$STATUS" 1
	[ $((SECONDS - start)) -ge 6 ]
	# shellcheck disable=SC2086
	gone $stages
	assert_equal "$(cat "$WORK/err")" "cdc-source: warning: pg-cdc-tail has not stopped after 1 s; stopping it
cdc-source: warning: kafka-pub has not stopped after 1 s; stopping it
cdc-source: warning: pg-cdc-tail has not stopped; killing it
cdc-source: kafka-pub was killed by signal 15"
}

@test "SIGTERM mid-stream stops cdc-source and cdc-sink cleanly: exit 0, no stage left, nothing lost" {
	new_databases
	kafka_topic "$TOPIC" 1
	start_source
	start_sink
	simulate --count 3000 --rate 1500 --seed 14 3>&- &
	SIM=$!
	STARTED+=("$SIM")
	wait_for 20 '[ "$(cat "$STATE/sink-default.ack" 2>/dev/null || echo 0)" -gt 0 ]'
	stages=$(pgrep -P "$SOURCE"; pgrep -P "$SINK")
	kill -0 "$SIM"	# mid-stream: order-sim still writes
	kill -TERM "$SOURCE"
	wait_exit "$SOURCE" 20
	assert_equal "$STATUS" 0
	kill -TERM "$SINK"
	wait_exit "$SINK" 20
	assert_equal "$STATUS" 0
	# shellcheck disable=SC2086
	gone $stages
	# an orderly stop: every line written was acknowledged before the exit
	assert_equal "$(cat "$WORK/source.err" "$WORK/sink-default.err")" ""
	wait "$SIM"
	start_source
	start_sink
	assert_converged 60
}

@test "dead letters of both sink stages are appended to the instance's file in the state directory" {
	new_databases
	kafka_topic "$TOPIC" 1
	echo "CDC_DLQ_TABLE=analytics.failed_events" >>"$WORK/sink.env"
	mkdir -p "$STATE"
	echo '{"earlier":"dead letter"}' >"$STATE/sink-default-dead-letters.ndjson"
	good='{"op":"c","table":"public.orders","key":{"id":"00000000-0000-0000-0000-000000000001"},"before":null,"after":{"id":"00000000-0000-0000-0000-000000000001","status":"new","version":1},"pos":1}'
	bad='{"op":"c","table":"public.orders","key":{"id":"not a uuid"},"before":null,"after":{"id":"not a uuid"},"pos":2}'
	printf '%s\n' 'not json' "$bad" "$good" | kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -X acks=all
	start_sink
	wait_for 30 '[ "$(wc -l <"$STATE/sink-default-dead-letters.ndjson")" -eq 3 ]'
	wait_for 10 '[ "$(sql -d "$WH" -c "SELECT status FROM analytics.fct_orders")" = new ]'
	dead() {
		jq -r --arg line "$1" 'select(.line == $line) | .error' "$STATE/sink-default-dead-letters.ndjson"
	}
	# pg-upsert's line is the message with its origin (kafka-sub --origin), and its record says it too
	origin="{\"topic\":\"$TOPIC\",\"partition\":0,\"offset\":1}"
	bad_line="${bad%\}},\"kafka\":$origin}"
	assert_equal "$(head -n 1 "$STATE/sink-default-dead-letters.ndjson")" '{"earlier":"dead letter"}'
	assert_regex "$(dead 'not json')" '^not JSON: '
	assert_regex "$(dead "$bad_line")" 'uuid'
	assert_equal "$(jq -c 'select(.line | startswith("not json") | not) | select(.topic) | {topic, partition, offset}' \
		"$STATE/sink-default-dead-letters.ndjson")" "$origin"
	assert_equal "$(jq -c 'select(.line == "not json") | {topic, partition, offset}' \
		"$STATE/sink-default-dead-letters.ndjson")" "{\"topic\":\"$TOPIC\",\"partition\":0,\"offset\":0}"
	assert_equal "$(sql -d "$WH" -c "SELECT convert_from(raw_value, 'UTF8') FROM analytics.failed_events")" "$bad_line"
}

@test "kill -HUP cdc-sink: both stages open their dead-letter file again (logrotate, systemctl reload); kill -USR1: both report" {
	new_databases
	kafka_topic "$TOPIC" 1
	dlq=$STATE/sink-default-dead-letters.ndjson
	bad='{"op":"c","table":"public.orders","key":{"id":"not a uuid"},"before":null,"after":{"id":"not a uuid"},"pos":2}'
	printf '%s\n' 'not json 1' "$bad" | kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -X acks=all
	start_sink
	wait_for 30 '[ "$(wc -l <"$dlq")" -eq 2 ]' || fail "dead letters: $(cat "$dlq")"
	# logrotate's move, then its postrotate: the next dead letters of both stages go to a new file
	mv "$dlq" "$dlq.1"
	kill -HUP "$SINK"
	sleep 1
	printf '%s\n' 'not json 2' "${bad/\"pos\":2/\"pos\":3}" | kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -X acks=all
	wait_for 30 '[ "$(wc -l <"$dlq" 2>/dev/null)" = 2 ]' || fail "new file: $(cat "$dlq" 2>&1)"
	assert_equal "$(jq -r '[.line[0:10], (.pos // "-")] | join(" ")' "$dlq.1")" 'not json 1 -
{"op":"c", 2'
	assert_equal "$(jq -r '[.line[0:10], (.pos // "-")] | join(" ")' "$dlq")" 'not json 2 -
{"op":"c", 3'
	# the pair runs on, and SIGUSR1 has each stage report its figures
	kill -USR1 "$SINK"
	wait_for 10 '[ "$(grep -c "^{\"stage\":" "$WORK/sink-default.err")" -eq 2 ]' ||
		fail "reports: $(cat "$WORK/sink-default.err")"
	assert_equal "$(jq -r '[.stage, .dead_lettered] | join(" ")' <(grep '^{"stage":' "$WORK/sink-default.err") | sort)" \
"kafka-sub 2
pg-upsert 2"
	kill -0 "$(stage "$SINK" kafka-sub)"
	kill -0 "$(stage "$SINK" pg-upsert)"
	kill -TERM "$SINK"
	wait_exit "$SINK" 20
	assert_equal "$STATUS" 0
}

@test "systemd-analyze verify passes on the units" {
	# The units run the installed scripts, /usr/local/bin/cdc-*, which
	# verify requires to exist: check copies that run the scripts of this
	# tree, and find their Documentation= man pages in a man tree of it.
	mkdir -p "$WORK/units" "$WORK/man/man1"
	cp "$TOP"/man/*.1 "$WORK/man/man1/"
	for u in pgcdc-source.service pgcdc-sink@.service; do
		sed "s|^ExecStart=/usr/local/bin/|ExecStart=$TOP/bin/|" "$TOP/systemd/$u" >"$WORK/units/$u"
		grep -q "^ExecStart=$TOP/bin/cdc-s" "$WORK/units/$u"
	done
	run env MANPATH="$WORK/man" systemd-analyze verify \
		"$WORK/units/pgcdc-source.service" "$WORK/units/pgcdc-sink@.service" "$WORK/units/pgcdc-sink@2.service"
	assert_success
	assert_output ""
}

@test "under systemd's notify protocol each half is READY once both its stages are, and STATUS= shows both" {
	new_databases
	kafka_topic "$TOPIC" 1
	socat -u UNIX-RECV:"$WORK/notify" - >"$WORK/heard" 2>/dev/null 3>&- &
	STARTED+=($!)
	wait_for 10 '[ -S "$WORK/notify" ]'
	env -i PATH="$PATH" NOTIFY_SOCKET="$WORK/notify" WATCHDOG_USEC=2000000 cdc-source -e "$WORK/source.env" \
		</dev/null >/dev/null 2>>"$WORK/source.err" 3>&- &
	SOURCE=$!
	STARTED+=("$SOURCE")
	wait_for 20 'grep -q "^READY=1" "$WORK/heard"'
	simulate --count 50 --rate 0
	wait_for 20 'grep -q "^STATUS=pg-cdc-tail: .*; kafka-pub: 5[0-9] lines read, 5[0-9] messages delivered, 0 dead-lettered, 0 in flight$" "$WORK/heard"'
	# the stages' pings reach systemd through pgcdc-pair
	wait_for 10 '[ "$(grep -c "^WATCHDOG=1" "$WORK/heard")" -ge 2 ]'
	assert_equal "$(grep -c '^READY=1' "$WORK/heard")" 1
	kill -TERM "$SOURCE"
	wait_for 30 '! kill -0 "$SOURCE" 2>/dev/null'
	wait_for 10 'grep -q "^STOPPING=1" "$WORK/heard"'
	assert_equal "$(cat "$WORK/source.err")" ""
}
