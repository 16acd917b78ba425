#!/usr/bin/env bats
# cdc-status: the pipeline of cdc-source and cdc-sink, run from env files
# against a real PostgreSQL and a real Kafka broker, seen caught up, with the
# sink stalled by a lock, with dead letters; its options and usage errors.

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
	TOPIC="status_${BATS_TEST_NUMBER}"
	STARTED=()
}

# Stop by pid whatever the test started: the stages first.
teardown() {
	stop_started
	rm -rf "$WORK"
}

# new_pipeline: a source database, a warehouse, a topic and the env files of
# both halves; the stages rewrite their metrics files every second.
new_pipeline() {
	new_source_db
	new_warehouse_db
	kafka_topic "$TOPIC" 1
	cat >"$WORK/source.env" <<-EOF
		CDC_SOURCE="host=$PGHOST port=$PGPORT user=postgres dbname=$DB"
		CDC_TABLE=orders
		CDC_TOPIC=$TOPIC
		KAFKA_BROKERS=$KAFKA_BROKERS
		CDC_STATE_DIR=$STATE
		CDC_TAIL_OPTS=--poll=200
	EOF
	cat >"$WORK/sink.env" <<-EOF
		CDC_WAREHOUSE="host=$PGHOST port=$PGPORT user=postgres dbname=$WH"
		CDC_TARGET=analytics.fct_orders
		CDC_TOPIC=$TOPIC
		CDC_GROUP=status_$BATS_TEST_NUMBER
		KAFKA_BROKERS=$KAFKA_BROKERS
		CDC_STATE_DIR=$STATE
		CDC_SUB_OPTS=--stats=1
		CDC_UPSERT_OPTS=--stats=1
	EOF
}

# start HALF [NAME]: cdc-source or cdc-sink in the background, from the env
# file NAME.env (default: HALF.env)
start() {
	env -i PATH="$PATH" "cdc-$1" -e "$WORK/${2:-$1}.env" \
		</dev/null >/dev/null 2>>"$WORK/${2:-$1}.err" 3>&- &
	STARTED+=($!)
}

simulate() {
	order-sim -d "$DB" --clients 2 --update-ratio 0.3 -q "$@"
}

# metric FILE NAME: the value of the stage's sample NAME in the metrics file
metric() {
	sed -n "s/^$2{stage=\"[a-z-]*\",pipeline=\"[a-z-]*\"} //p" "$1" 2>/dev/null
}

# status ARGS...: cdc-status from both env files, and only PATH
status() {
	run --separate-stderr env -i PATH="$PATH" cdc-status -e "$WORK/source.env" -e "$WORK/sink.env" "$@"
}

@test "--help prints the usage and exits 0" {
	run --separate-stderr cdc-status --help
	assert_success
	assert_line --index 0 "Usage: cdc-status [-hjV] [-e FILE]... [--interval=SECONDS] [--stale=SECONDS]"
	assert_line --partial "CDC_STATE_DIR      state directory"
	assert_equal "$stderr" ""
}

@test "usage errors exit 3 (UNKNOWN) with a hint" {
	run --separate-stderr cdc-status --bogus
	assert_failure 3
	assert_equal "$output" ""
	assert_equal "$stderr" 'cdc-status: error: unrecognized option "--bogus"
Try "cdc-status --help" for more information.'
	run --separate-stderr env -i PATH="$PATH" CDC_WAREHOUSE=x cdc-status --interval=soon
	assert_failure 3
	assert_equal "${stderr_lines[0]}" 'cdc-status: error: option "--interval" takes a number of seconds, not "soon"'
	run --separate-stderr env -i PATH="$PATH" CDC_STATE_DIR="$STATE" cdc-status
	assert_failure 3
	assert_equal "${stderr_lines[0]}" "cdc-status: error: neither CDC_SOURCE nor CDC_WAREHOUSE is set: nothing to check"
	run --separate-stderr cdc-status -e "$WORK/missing.env"
	assert_failure 3
	assert_equal "${stderr_lines[0]}" "cdc-status: error: cannot read env file \"$WORK/missing.env\""
}

@test "a source database without the consumer: exit 3, CDC UNKNOWN naming it" {
	new_source_db
	run --separate-stderr env -i PATH="$PATH" CDC_SOURCE="host=$PGHOST port=$PGPORT user=postgres dbname=$DB" \
		CDC_NAME=nobody CDC_STATE_DIR="$STATE" cdc-status --interval=0
	assert_failure 3
	assert_line --index 0 --regexp '^STAGE +POSITION +LAG +DEAD +STATE$'
	assert_line --index 1 --regexp '^pg-cdc-tail +- +- +- +OK$'
	assert_line --index -1 'CDC UNKNOWN - no replication slot or consumer named "nobody" in the source database'
	assert_equal "$stderr" ""
}

@test "a metrics file not rewritten for --stale seconds is STALE: exit 1, CDC WARNING" {
	mkdir -m 700 "$STATE"
	printf '%s\n' 'pgcdc_lines_acknowledged_total{stage="pg-upsert"} 7' \
		'pgcdc_pending_lines{stage="pg-upsert"} 0' >"$STATE/sink-b-upsert.prom"
	echo 7 >"$STATE/sink-b.ack"
	touch -d '-2 minutes' "$STATE/sink-b-upsert.prom"
	run --separate-stderr env -i PATH="$PATH" CDC_WAREHOUSE=x CDC_STATE_DIR="$STATE" cdc-status --interval=0
	assert_failure 1
	assert_line --index 2 --regexp '^pg-upsert@b +7 +0 lines pending +- +STALE$'
	assert_line --index -1 --regexp "^CDC WARNING - pg-upsert@b stale: \"$STATE/sink-b-upsert.prom\" not rewritten for 1[0-9]{2} s\$"
	run --separate-stderr env -i PATH="$PATH" CDC_WAREHOUSE=x CDC_STATE_DIR="$STATE" cdc-status --interval=0 --stale=0
	assert_success
	assert_line --index -1 "CDC OK - 2 stages, not sampled twice"
}

@test "node_exporter's textfile collector reads the metrics of both halves and two sink instances together, without an error" {
	command -v prometheus-node-exporter >/dev/null || fail "prometheus-node-exporter is not installed (make deps)"
	new_pipeline
	# the metrics in a directory of their own, as the systemd units have them
	echo "CDC_METRICS_DIR=$WORK/metrics" | tee -a "$WORK/source.env" >>"$WORK/sink.env"
	{ cat "$WORK/sink.env"; echo CDC_INSTANCE=b; } >"$WORK/sink-b.env"
	start source
	start sink
	start sink sink-b
	simulate --count 100 --rate 0 --seed 4
	changes=$(sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log WHERE op <> 's'")
	# one partition: one instance applies everything, the other stands by
	wait_for 60 '[ "$(cat "$STATE"/sink-{default,b}.ack 2>/dev/null | sort -n | tail -n 1)" = $((changes + 1)) ] &&
		[ "$(ls "$WORK/metrics"/*.prom 2>/dev/null | wc -l)" -eq 6 ]' ||
		fail "acks: $(cat "$STATE"/sink-*.ack); metrics: $(ls "$WORK/metrics")"
	assert_equal "$(ls "$STATE"/*.prom 2>/dev/null)" ""
	port=$(_kafka_free_port)
	prometheus-node-exporter --web.listen-address="127.0.0.1:$port" --collector.disable-defaults \
		--collector.textfile --collector.textfile.directory="$WORK/metrics" \
		</dev/null >"$WORK/node_exporter.log" 2>&1 3>&- &
	STARTED+=($!)
	wait_for 20 'curl -sf "http://127.0.0.1:$port/metrics" >"$WORK/scrape"' ||
		fail "node_exporter: $(cat "$WORK/node_exporter.log")"
	# every file read, nothing refused: metric names mean the same in every
	# stage, and the instances' samples differ by their pipeline label
	grep -qx 'node_textfile_scrape_error 0' "$WORK/scrape"
	run grep -i 'level=error' "$WORK/node_exporter.log"
	assert_output ""
	run grep '^pgcdc_lines_acknowledged_total{' "$WORK/scrape"
	assert_equal "${#lines[@]}" 6
	for s in 'pipeline="source",stage="pg-cdc-tail"' 'pipeline="source",stage="kafka-pub"' \
		'pipeline="sink-default",stage="kafka-sub"' 'pipeline="sink-default",stage="pg-upsert"' \
		'pipeline="sink-b",stage="kafka-sub"' 'pipeline="sink-b",stage="pg-upsert"'; do
		assert_line --regexp "^pgcdc_lines_acknowledged_total\\{$s\\} [0-9]+\$"
	done
	# what the two instances applied together is every change and the schema event
	assert_equal "$(sed -n 's/^pgcdc_applied_total{pipeline="sink-[a-z]*",stage="pg-upsert"} //p' "$WORK/scrape" |
		awk '{ n += $1 } END { print n }')" $((changes + 1))
	# cdc-status finds them there too
	run --separate-stderr env -i PATH="$PATH" cdc-status -e "$WORK/source.env" -e "$WORK/sink.env" --interval=0
	assert_success
	assert_line --index -1 "CDC OK - 7 stages, not sampled twice"
}

@test "a pipeline caught up: every stage OK, exit 0, CDC OK; --json says the same" {
	new_pipeline
	start source
	start sink
	simulate --count 300 --rate 0 --seed 1
	changes=$(sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log WHERE op <> 's'")
	# every change and the schema event applied, and kafka-sub's file says so
	wait_for 60 '[ "$(cat "$STATE/sink-default.ack" 2>/dev/null)" = $((changes + 1)) ] &&
		[ "$(metric "$STATE/sink-default-sub.prom" pgcdc_lines_out_total)" = $((changes + 1)) ]' ||
		fail "sink-default.ack: $(cat "$STATE/sink-default.ack")"
	status --interval=1
	assert_success
	assert_equal "${#lines[@]}" 7
	assert_line --index 1 --regexp '^pg-cdc-tail +[0-9]+ +0 changes behind +- +OK$'
	assert_line --index 2 --regexp "^kafka-pub +$((changes + 1)) +- +- +OK\$"
	assert_line --index 3 --regexp "^kafka-sub +$((changes + 1)) +0 messages behind +0 +OK\$"
	assert_line --index 4 --regexp "^pg-upsert +$((changes + 1)) +0 lines pending +0 +OK\$"
	# the group's offsets as the brokers keep them
	assert_line --index 5 --regexp "^group:status_$BATS_TEST_NUMBER +$((changes + 1)) +0 messages behind +- +OK\$"
	assert_line --index 6 "CDC OK - 5 stages, none stuck"
	assert_equal "$stderr" ""

	status --interval=0 --json
	assert_success
	assert_equal "$(jq -r '[.status, .exit, .message] | join(" ")' <<<"$output")" "OK 0 CDC OK - 5 stages, not sampled twice"
	assert_equal "$(jq -r '.stages[1:][] | .position' <<<"$output" | sort -u)" "$((changes + 1))"
	assert_equal "$(jq -r '.stages[] | [.stage, .lag, .state] | join(" ")' <<<"$output")" "pg-cdc-tail 0 OK
kafka-pub  OK
kafka-sub 0 OK
pg-upsert 0 OK
group:status_$BATS_TEST_NUMBER 0 OK"
	assert_equal "$(jq -c .dead_letters <<<"$output")" "[{\"file\":\"$STATE/source-dead-letters.ndjson\",\"lines\":0},{\"file\":\"$STATE/sink-default-dead-letters.ndjson\",\"lines\":0}]"
}

@test "a sink stalled by a lock on its table: pg-upsert STUCK with its pending lines, exit 2, CDC CRITICAL" {
	new_pipeline
	start source
	start sink
	simulate --count 50 --rate 0 --seed 2
	wait_for 60 '[ "$(cat "$STATE/sink-default.ack" 2>/dev/null || echo 0)" -gt 50 ]'
	# the lock held for a minute in the background
	sql -d "$WH" -c "BEGIN; LOCK analytics.fct_orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)" \
		>/dev/null 2>&1 3>&- &
	STARTED+=($!)
	wait_for 10 '[ "$(sql -d "$WH" -c "SELECT count(*) FROM pg_locks WHERE mode = '\''AccessExclusiveLock'\'' AND relation = '\''analytics.fct_orders'\''::regclass")" = 1 ]'
	acked=$(cat "$STATE/sink-default.ack")
	# the lag rises while nothing is applied: kafka-sub passes on what comes, the ack file stays
	simulate --count 100 --rate 0 --seed 20
	wait_for 30 '[ "$(metric "$STATE/sink-default-sub.prom" pgcdc_lines_out_total)" -gt $((acked + 50)) ]' ||
		fail "kafka-sub passed on $(metric "$STATE/sink-default-sub.prom" pgcdc_lines_out_total)"
	first=$(($(metric "$STATE/sink-default-sub.prom" pgcdc_lines_out_total) - acked))
	simulate --count 100 --rate 0 --seed 50
	wait_for 30 '[ "$(metric "$STATE/sink-default-sub.prom" pgcdc_lines_out_total)" -gt $((acked + first + 50)) ]' ||
		fail "kafka-sub passed on $(metric "$STATE/sink-default-sub.prom" pgcdc_lines_out_total)"
	pending=$(($(metric "$STATE/sink-default-sub.prom" pgcdc_lines_out_total) - acked))
	assert [ "$pending" -gt "$first" ]
	status --interval=2
	assert_failure 2
	assert_equal "$(cat "$STATE/sink-default.ack")" "$acked"
	assert_line --index 4 --regexp "^pg-upsert +$acked +$pending lines pending +[0-9]+ +STUCK\$"
	assert_line --index -1 "CDC CRITICAL - pg-upsert stuck: $pending lines pending"
	assert_equal "$stderr" ""

	status --interval=1 --json
	assert_failure 2
	assert_equal "$(jq -r '.stages[] | select(.state != "OK") | [.stage, .lag, .lag_unit, .state] | join(" ")' <<<"$output")" \
		"pg-upsert $pending lines pending STUCK"
	assert_equal "$(jq -r .exit <<<"$output")" 2
}

@test "a capture stopped (SIGSTOP) while changes are committed: pg-cdc-tail STUCK with the changes behind, exit 2" {
	new_pipeline
	start source
	start sink
	simulate --count 20 --rate 0 --seed 6
	wait_for 60 '[ "$(cat "$STATE/sink-default.ack" 2>/dev/null || echo 0)" -gt 20 ]'
	tail=$(pgrep -P "${STARTED[0]}" -x pg-cdc-tail)
	kill -STOP "$tail"
	simulate --count 30 --rate 0 --seed 66
	behind=$(sql -d "$DB" -c "SELECT sum(changes) FROM cdc.lag WHERE consumer = 'cdc-source'")
	assert [ "$behind" -ge 30 ]
	status --interval=1
	kill -CONT "$tail"
	assert_failure 2
	assert_line --index 1 --regexp "^pg-cdc-tail +[0-9]+ +$behind changes behind +- +STUCK\$"
	assert_line --index -1 "CDC CRITICAL - pg-cdc-tail stuck: $behind changes behind"
	# going on, it catches up: OK again
	wait_for 60 '[ "$(sql -d "$DB" -c "SELECT coalesce(sum(changes), 0) FROM cdc.lag WHERE consumer = '\''cdc-source'\''")" = 0 ]'
	status --interval=1
	assert_line --index 1 --regexp '^pg-cdc-tail +[0-9]+ +0 changes behind +- +OK$'
}

@test "a sink that is down while changes come: its group STUCK from the brokers' offsets, exit 2, CDC CRITICAL" {
	new_pipeline
	start source
	start sink
	simulate --count 20 --rate 0 --seed 8
	wait_for 60 '[ "$(cat "$STATE/sink-default.ack" 2>/dev/null || echo 0)" -gt 20 ]'
	acked=$(cat "$STATE/sink-default.ack")
	kill -TERM "${STARTED[1]}"
	wait_for 30 '! kill -0 "${STARTED[1]}" 2>/dev/null'
	simulate --count 30 --rate 0 --seed 88
	changes=$(sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log WHERE op <> 's'")
	wait_for 30 '[ "$(cat "$STATE/source.ack")" = $((changes + 1)) ]'
	# what kafka-sub --lag says: each partition's committed offset, end and lag
	run --separate-stderr kafka-sub --lag -g "status_$BATS_TEST_NUMBER" -t "$TOPIC"
	assert_success
	assert_output "{\"topic\":\"$TOPIC\",\"partition\":0,\"committed\":$acked,\"end\":$((changes + 1)),\"lag\":$((changes + 1 - acked))}"
	# the members' figures older than --stale: nobody applies the backlog
	sleep 2
	status --interval=1 --stale=1
	assert_failure 2
	assert_line --regexp "^group:status_$BATS_TEST_NUMBER +$acked +$((changes + 1 - acked)) messages behind +- +STUCK\$"
	assert_line --index -1 --regexp "^CDC CRITICAL - group:status_$BATS_TEST_NUMBER stuck: $((changes + 1 - acked)) messages behind; "
	# the sink back: it catches up, and the group is OK
	start sink
	wait_for 60 '[ "$(kafka-sub --lag -g "status_$BATS_TEST_NUMBER" -t "$TOPIC" | jq .lag)" = 0 ]'
	status --interval=1
	assert_success
	assert_line --regexp "^group:status_$BATS_TEST_NUMBER +$((changes + 1)) +0 messages behind +- +OK\$"
}

@test "dead letters in the sink's file: exit 1, CDC WARNING with the count; --json counts the same" {
	new_pipeline
	printf '%s\n' 'not json' '{"op":"c"}' | kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -X acks=all
	start sink
	wait_for 30 '[ "$(cat "$STATE/sink-default-dead-letters.ndjson" 2>/dev/null | wc -l)" -eq 2 ] &&
		[ "$(metric "$STATE/sink-default-upsert.prom" pgcdc_dead_lettered_total)" = 1 ]'
	run --separate-stderr env -i PATH="$PATH" cdc-status -e "$WORK/sink.env" --interval=1
	assert_failure 1
	assert_line --index 1 --regexp '^kafka-sub +2 +0 messages behind +1 +OK$'
	assert_line --index 2 --regexp '^pg-upsert +1 +0 lines pending +1 +OK$'
	assert_line --index 3 --regexp "^group:status_$BATS_TEST_NUMBER +2 +0 messages behind +- +OK\$"
	assert_line --index 4 "dead letters: 2 in \"$STATE/sink-default-dead-letters.ndjson\""
	assert_line --index 5 "CDC WARNING - 2 dead letters in \"$STATE/sink-default-dead-letters.ndjson\""
	assert_equal "$stderr" ""

	run --separate-stderr env -i PATH="$PATH" cdc-status -e "$WORK/sink.env" --interval=0 -j
	assert_failure 1
	assert_equal "$(jq -c '[.exit, .dead_letters, [.stages[].dead_letters]]' <<<"$output")" \
		"[1,[{\"file\":\"$STATE/sink-default-dead-letters.ndjson\",\"lines\":2}],[1,1,null]]"
}
