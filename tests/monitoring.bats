#!/usr/bin/env bats
# What an operator sees of a running stage: pg-upsert's and pg-cdc-tail's
# figures as JSON lines (--stats, SIGUSR1), the Prometheus textfile
# (--metrics, checked with promtool), and systemd's notify protocol (READY,
# STATUS, WATCHDOG, STOPPING) received on a socket of the test's own (socat);
# and the dead-letter lifecycle: where a dead letter came from, --replay.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source warehouse
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	new_warehouse_db
	WORK=$BATS_TEST_TMPDIR
	BG=()
}

teardown() {
	local p
	for p in "${BG[@]}"; do kill -9 "$p" 2>/dev/null; done
	return 0
}

# stream N: N changes by order-sim, as pg-cdc-tail emits them, in $WORK/events
stream() {
	new_source_db
	order-sim -d "$DB" -q --clients 2 --count "$1" --rate 0 --update-ratio 0.3 --seed 5
	pg-cdc-tail -d "$DB" -t orders >"$WORK/events"
}

# last JSON line of FILE with stage pg-upsert: its member NAME
fig() {
	grep '^{"stage":"pg-upsert"' "$2" | tail -n 1 | jq -r ".$1"
}

@test "--stats: JSON lines whose counts are what was sent, applied and dead-lettered" {
	stream 500
	# two lines that are no events among them
	{ head -n 200 "$WORK/events"; echo 'not json'; echo '{"op":"c"}'; tail -n +201 "$WORK/events"; } >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders --stats=1 --stats-file="$WORK/stats" \
		--dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	# the last line, at exit, has every line in
	assert_equal "$(fig lines_in "$WORK/stats")" 502
	assert_equal "$(fig lines_acknowledged "$WORK/stats")" 502
	assert_equal "$(fig applied "$WORK/stats")" 500
	assert_equal "$(fig dead_lettered "$WORK/stats")" 2
	assert_equal "$(fig pending_lines "$WORK/stats")" 0
	assert_equal "$(fig retries "$WORK/stats")" 0
	[ "$(fig batches "$WORK/stats")" -ge 1 ]
	assert_equal "$(fig pos "$WORK/stats")" "$(tail -n 1 "$WORK/events" | jq .pos)"
	# and per table, by the name the catalog gives it
	assert_equal "$(fig 'table_applied | tojson' "$WORK/stats")" '{"analytics.fct_orders":500}'
	# the latency of the last batch: from its source commit, a few seconds ago at most
	jq -e '.apply_latency_seconds > 0 and .apply_latency_seconds < 600' <<<"$(tail -n 1 "$WORK/stats")"
	# every line is one JSON object with the stage and a UTC time
	run jq -e -s 'all(.stage == "pg-upsert" and (.time | test("^[0-9-]{10}T[0-9:.]{12}Z$")))' "$WORK/stats"
	assert_success
	assert_equal "$(wc -l <"$WORK/dlq")" 2
}

@test "SIGUSR1: a line on demand, on stderr, while it waits for input; the figures move as lines come" {
	stream 100
	mkfifo "$WORK/fifo"
	pg-upsert -d "$WH" -t analytics.fct_orders <"$WORK/fifo" 2>"$WORK/err" 3>&- &
	BG+=($!)
	exec 4>"$WORK/fifo"
	head -n 40 "$WORK/events" >&4
	wait_for 20 '[ "$(sql -d "$WH" -c "SELECT count(DISTINCT id) FROM analytics.fct_orders")" = \
		"$(head -n 40 "$WORK/events" | jq -r .key.id | sort -u | wc -l)" ]'
	sleep 0.2
	kill -USR1 "${BG[0]}"
	wait_for 10 'grep -q "^{\"stage\":\"pg-upsert\"" "$WORK/err"'
	assert_equal "$(fig lines_acknowledged "$WORK/err")" 40
	tail -n +41 "$WORK/events" >&4
	exec 4>&-
	wait "${BG[0]}"
	# no --stats: no line at exit, only the one asked for
	assert_equal "$(grep -c '^{"stage"' "$WORK/err")" 1
	assert_equal "$(grep -vc '^{"stage"' "$WORK/err")" 0
}

@test "--metrics: a Prometheus textfile promtool accepts, replaced whole, with the same figures" {
	stream 300
	run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders --metrics="$WORK/pgcdc.prom" <"$WORK/events"
	assert_success
	# nothing on stderr: the metrics go to their file only
	assert_equal "$stderr" ""
	run promtool check metrics <"$WORK/pgcdc.prom"
	assert_success
	assert_output ""
	grep -qx 'pgcdc_lines_acknowledged_total{stage="pg-upsert"} 300' "$WORK/pgcdc.prom"
	grep -qx 'pgcdc_applied_total{stage="pg-upsert"} 300' "$WORK/pgcdc.prom"
	grep -qx 'pgcdc_table_applied_total{stage="pg-upsert",table="analytics.fct_orders"} 300' "$WORK/pgcdc.prom"
	grep -qx '# TYPE pgcdc_apply_latency_seconds gauge' "$WORK/pgcdc.prom"
	# no temporary left beside it
	assert_equal "$(ls "$WORK" | grep -c 'pgcdc.prom')" 1
	# a directory it cannot write is one error and exit 1
	run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders --metrics=/nonexistent/x.prom <"$WORK/events"
	assert_failure 1
	assert_regex "$stderr" '^pg-upsert: cannot write metrics file "/nonexistent/x\.prom\.[0-9]+": No such file or directory$'
}

@test "--metrics-label: every sample labelled besides its stage; the file is readable by all under umask 077" {
	stream 20
	(umask 077 && pg-upsert -q -d "$WH" -t analytics.fct_orders --metrics="$WORK/m.prom" \
		--metrics-label=pipeline=sink-1 --metrics-label='host=a "b" \c' <"$WORK/events")
	assert_equal "$(stat -c %a "$WORK/m.prom")" 644
	run promtool check metrics <"$WORK/m.prom"
	assert_success
	grep -qx 'pgcdc_applied_total{stage="pg-upsert",pipeline="sink-1",host="a \\"b\\" \\\\c"} 20' "$WORK/m.prom"
	grep -qx 'pgcdc_table_applied_total{stage="pg-upsert",pipeline="sink-1",host="a \\"b\\" \\\\c",table="analytics.fct_orders"} 20' \
		"$WORK/m.prom"
	# every sample has both
	assert_equal "$(grep -v '^#' "$WORK/m.prom" | grep -vc 'pipeline="sink-1",host=')" 0
	# a name Prometheus would refuse, or one the figures have of their own: usage errors
	local bad
	for bad in pipeline 1x=a __x=a a-b=c table=x partition=0 =x; do
		run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders --metrics-label="$bad" </dev/null
		assert_failure 2
		assert_regex "${stderr_lines[0]}" '^pg-upsert: error: --metrics-label'
	done
}

@test "systemd's notify socket: READY=1 once connected, STATUS= with the summary, WATCHDOG=1, STOPPING=1" {
	stream 50
	socat -u UNIX-RECV:"$WORK/notify" - >"$WORK/heard" 2>"$WORK/socat.err" 3>&- &
	BG+=($!)
	wait_for 10 '[ -S "$WORK/notify" ]'
	mkfifo "$WORK/fifo"
	NOTIFY_SOCKET=$WORK/notify WATCHDOG_USEC=400000 pg-upsert -d "$WH" -t analytics.fct_orders \
		<"$WORK/fifo" 2>"$WORK/err" 3>&- &
	BG+=($!)
	exec 4>"$WORK/fifo"
	wait_for 10 'grep -q "^READY=1" "$WORK/heard"'
	cat "$WORK/events" >&4
	wait_for 20 'grep -q "^STATUS=50 lines acknowledged: 50 applied, 0 dead-lettered; last batch [0-9]* ms behind" "$WORK/heard"'
	# idle, it still tells the watchdog it lives: every 200 ms
	local before
	before=$(grep -c '^WATCHDOG=1' "$WORK/heard")
	sleep 1
	[ "$(grep -c '^WATCHDOG=1' "$WORK/heard")" -ge $((before + 3)) ]
	exec 4>&-
	wait "${BG[1]}"
	wait_for 10 'grep -q "^STOPPING=1" "$WORK/heard"'
	assert_equal "$(head -n 2 "$WORK/heard")" "READY=1
STATUS=connected, waiting for input"
	assert_equal "$(cat "$WORK/err")" ""
}

@test "SIGHUP opens the dead-letter and stats files again: logrotate's move is followed by new files, nothing lost" {
	mkfifo "$WORK/fifo"
	pg-upsert -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq" --ack="$WORK/ack" \
		--stats=1 --stats-file="$WORK/stats" <"$WORK/fifo" 2>"$WORK/err" 3>&- &
	BG+=($!)
	exec 4>"$WORK/fifo"
	echo 'first bad' >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 1 ] && [ -s "$WORK/stats" ]'
	mv "$WORK/dlq" "$WORK/dlq.1"
	mv "$WORK/stats" "$WORK/stats.1"
	kill -HUP "${BG[0]}"
	sleep 0.3
	echo 'second bad' >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 2 ]'
	wait_for 10 '[ "$(fig dead_lettered "$WORK/stats")" = 2 ]'
	exec 4>&-
	wait "${BG[0]}"
	assert_equal "$(jq -r .line "$WORK/dlq.1")" 'first bad'
	assert_equal "$(jq -r .line "$WORK/dlq")" 'second bad'
	assert_equal "$(stat -c %a "$WORK/dlq")" 600
	# the stats lines after the move went to the new file only
	assert_equal "$(jq -r .dead_lettered "$WORK/stats.1" | sort -u)" 1
	assert_equal "$(cat "$WORK/err")" ""
}

# ------------------------------------------------------- the dead-letter lifecycle

# rows WH: the warehouse's orders with each row's version (xmin): a row written again shows
rows() {
	sql -d "$1" -c "SELECT xmin, id, status, amount_cents, cdc_pos, is_deleted
		FROM analytics.fct_orders ORDER BY id"
}

@test "dead letters say where the event came from: its table, key and pos as the line has them" {
	stream 300
	sql -d "$WH" -c "ALTER TABLE analytics.fct_orders ADD CONSTRAINT small CHECK (amount_cents < 20000)"
	run --separate-stderr pg-upsert -q -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq" <"$WORK/events"
	assert_success
	assert [ "$(wc -l <"$WORK/dlq")" -gt 0 ]
	# each record's table, key and pos are the line's own, and the reason names the constraint
	run jq -c 'select([.table, .key, .pos] != (.line | fromjson | [.table, .key, .pos]))' "$WORK/dlq"
	assert_output ""
	assert_equal "$(jq -r .table "$WORK/dlq" | sort -u)" public.orders
	assert_equal "$(jq -r 'select(.error | contains("\"small\"") | not) | .error' "$WORK/dlq")" ""
	# a line that is no JSON object has none of them
	echo 'not json' | pg-upsert -q -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq2"
	assert_equal "$(cat "$WORK/dlq2")" '{"error":"not JSON: unexpected character","input_line":1,"line":"not json"}'
}

@test "a line from kafka-sub --origin: its dead letter says the message's topic, partition and offset; the line is kept whole" {
	local line='{"op":"c","table":"public.orders","key":{"id":"x"},"before":null,"after":{"id":"x"},"pos":9,"kafka":{"topic":"t.a","partition":2,"offset":41}}'
	# a member kafka that is not kafka-sub's shape gives only what is well formed
	printf '%s\n' "$line" '{"op":"c","pos":1,"kafka":{"topic":7,"partition":"2","offset":5}}' '{"op":"c","kafka":[1]}' |
		pg-upsert -q -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq"
	run jq -c 'del(.error, .line)' "$WORK/dlq"
	assert_output '{"input_line":1,"table":"public.orders","key":{"id":"x"},"pos":9,"topic":"t.a","partition":2,"offset":41}
{"input_line":2,"pos":1,"offset":5}
{"input_line":3}'
	assert_equal "$(head -n 1 "$WORK/dlq" | jq -r .line)" "$line"
	# replayed, a line refused again says the same
	pg-upsert -q -d "$WH" -t analytics.fct_orders --replay --dlq="$WORK/again" <"$WORK/dlq"
	assert_equal "$(jq -c 'del(.error, .input_line)' "$WORK/again")" "$(jq -c 'del(.error, .input_line)' "$WORK/dlq")"
}

@test "pg-upsert --replay: dead letters applied once their cause is fixed land exactly once, and never take a row back" {
	stream 300
	# the source as it is: what the warehouse must hold in the end
	sql -d "$DB" -c "SELECT id, status, amount_cents FROM orders ORDER BY id" >"$WORK/source"
	sql -d "$WH" -c "ALTER TABLE analytics.fct_orders ADD CONSTRAINT small CHECK (amount_cents < 20000)"
	pg-upsert -q -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq" <"$WORK/events"
	dead=$(wc -l <"$WORK/dlq")
	assert [ "$dead" -gt 0 ]
	# still refused: dead-lettered again, as the original lines, with the same reasons
	run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders --replay --dlq="$WORK/again" <"$WORK/dlq"
	assert_success
	assert_equal "$(jq -r .line "$WORK/again")" "$(jq -r .line "$WORK/dlq")"
	assert_equal "$(jq -r .error "$WORK/again")" "$(jq -r .error "$WORK/dlq")"
	# the cause fixed: every dead letter lands, with what the source holds
	sql -d "$WH" -c "ALTER TABLE analytics.fct_orders DROP CONSTRAINT small"
	run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders --replay --dlq="$WORK/again2" \
		--stats=60 <"$WORK/dlq"
	assert_success
	assert_equal "$(jq .applied <<<"$stderr")" "$dead"
	assert_equal "$(cat "$WORK/again2")" ""
	sql -d "$WH" -c "SELECT id, status, amount_cents FROM analytics.fct_orders ORDER BY id" >"$WORK/wh"
	run diff "$WORK/source" "$WORK/wh"
	assert_success
	# once: a second replay writes no row again
	rows "$WH" >"$WORK/before"
	pg-upsert -q -d "$WH" -t analytics.fct_orders --replay <"$WORK/dlq"
	rows "$WH" >"$WORK/after"
	run diff "$WORK/before" "$WORK/after"
	assert_success
	# never back: the first dead letter again, after a newer change of its row, changes nothing
	line=$(head -n 1 "$WORK/dlq" | jq -r .line)
	jq -c '.op = "u" | .pos += 1000000 | .after.status = "newer"' <<<"$line" |
		pg-upsert -q -d "$WH" -t analytics.fct_orders
	rows "$WH" >"$WORK/before"
	head -n 1 "$WORK/dlq" | pg-upsert -q -d "$WH" -t analytics.fct_orders --replay
	rows "$WH" >"$WORK/after"
	run diff "$WORK/before" "$WORK/after"
	assert_success
	assert_equal "$(sql -d "$WH" -c "SELECT status FROM analytics.fct_orders WHERE cdc_pos > 1000000")" newer
}

@test "pg-upsert --replay: records from --dlq-table (bytea) as line_base64; what is no record is dead-lettered again" {
	stream 100
	sql -d "$WH" -c "ALTER TABLE analytics.fct_orders ADD CONSTRAINT small CHECK (amount_cents < 20000)"
	pg-upsert -q -d "$WH" -t analytics.fct_orders --dlq=/dev/null --dlq-table=analytics.failed_events <"$WORK/events"
	dead=$(sql -d "$WH" -c "SELECT count(*) FROM analytics.failed_events")
	assert [ "$dead" -gt 0 ]
	sql -d "$WH" -c "ALTER TABLE analytics.fct_orders DROP CONSTRAINT small"
	# the table's rows as records: every byte kept, through base64
	sql -d "$WH" -c "SELECT json_build_object('error', error_message,
		'line_base64', translate(encode(raw_value, 'base64'), E'\n', '')) FROM analytics.failed_events ORDER BY id" \
		>"$WORK/records"
	{ cat "$WORK/records"; echo 'not a record'; echo '{"error":"x","truncated":true,"line":"{\"op\":"}'; } |
		pg-upsert -d "$WH" -t analytics.fct_orders --replay --dlq="$WORK/again" --stats=60 2>"$WORK/stats"
	assert_equal "$(jq .applied "$WORK/stats")" "$dead"
	assert_equal "$(jq .dead_lettered "$WORK/stats")" 2
	assert_equal "$(jq -c '[.error, .input_line, .line]' "$WORK/again")" \
"$(printf '%s\n' "[\"not JSON: unexpected character\",$((dead + 1)),\"not a record\"]" \
	"[\"the record keeps only the start of its line (truncated)\",$((dead + 2)),\"{\\\"error\\\":\\\"x\\\",\\\"truncated\\\":true,\\\"line\\\":\\\"{\\\\\\\"op\\\\\\\":\\\"}\"]")"
	sql -d "$DB" -c "SELECT id, status, amount_cents FROM orders ORDER BY id" >"$WORK/source"
	sql -d "$WH" -c "SELECT id, status, amount_cents FROM analytics.fct_orders ORDER BY id" >"$WORK/wh"
	run diff "$WORK/source" "$WORK/wh"
	assert_success
}

# ------------------------------------------------------------- pg-cdc-tail

# orders N: N new orders in one transaction, in $DB
orders() {
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		SELECT gen_random_uuid(), gen_random_uuid(), 'created', g, 'EUR', 'DE'
		FROM generate_series(1, $1) g"
}

# last JSON line of FILE with stage pg-cdc-tail: its member NAME (a jq path)
tfig() {
	grep '^{"stage":"pg-cdc-tail"' "$2" | tail -n 1 | jq -r ".$1"
}

@test "pg-cdc-tail --stats: the counts are the lines written, the pos the last event's, nothing behind at the end" {
	new_source_db
	order-sim -d "$DB" -q --clients 2 --count 300 --rate 0 --update-ratio 0.3 --seed 7
	run --separate-stderr pg-cdc-tail -d "$DB" --stats=1 --stats-file="$WORK/stats" -n c
	assert_success
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >"$WORK/events"
	# every change the source logged, once
	assert_equal "$(wc -l <"$WORK/events")" "$(sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log WHERE op <> 's'")"
	assert_equal "$(tfig lines_out "$WORK/stats")" "$(wc -l <"$WORK/events")"
	assert_equal "$(tfig lines_acknowledged "$WORK/stats")" "$(wc -l <"$WORK/events")"
	assert_equal "$(tfig pos "$WORK/stats")" "$(tail -n 1 "$WORK/events" | jq .pos)"
	assert_equal "$(tfig tables "$WORK/stats")" 1
	assert_equal "$(tfig reconnects "$WORK/stats")" 0
	assert_equal "$(tfig changes_behind "$WORK/stats")" 0
	assert_equal "$(tfig seconds_behind "$WORK/stats")" 0
	assert_equal "$(tfig '"table_changes_behind"."public.orders"' "$WORK/stats")" 0
}

# ack_all: $WORK/ack says every line of $WORK/out is durable
ack_all() {
	wc -l <"$WORK/out" >"$WORK/ack.new" && mv "$WORK/ack.new" "$WORK/ack"
}

@test "pg-cdc-tail --stats: a tail held behind reports the changes not yet written and their age, then none once caught up" {
	new_source_db
	orders 3
	pg-cdc-tail -d "$DB" -t orders -n c >/dev/null
	orders 10
	sleep 1.2
	# the downstream acknowledges nothing: 4 lines go out, 6 changes stay behind
	echo 0 >"$WORK/ack"
	pg-cdc-tail -d "$DB" -t orders -n c -f --ack="$WORK/ack" --window=4 --stats=1 \
		--stats-file="$WORK/stats" >"$WORK/out" 2>"$WORK/err" &
	BG+=($!)
	wait_for 20 '[ -s "$WORK/stats" ]'
	assert_equal "$(tfig lines_out "$WORK/stats")" 4
	assert_equal "$(tfig lines_acknowledged "$WORK/stats")" 0
	assert_equal "$(tfig changes_behind "$WORK/stats")" 6
	assert_equal "$(tfig '"table_changes_behind"."public.orders"' "$WORK/stats")" 6
	jq -e '.seconds_behind > 1 and .seconds_behind < 600' <<<"$(tail -n 1 "$WORK/stats")"
	# the view, from the stored position: all 10, none acknowledged
	assert_equal "$(sql -d "$DB" -c "SELECT changes FROM cdc.lag WHERE consumer = 'c'")" 10
	# the downstream acknowledges what it has, until all 10 are out
	wait_for 20 'ack_all; [ "$(wc -l <"$WORK/out")" = 10 ]'
	ack_all
	wait_for 20 '[ "$(tfig changes_behind "$WORK/stats")" = 0 ] && [ "$(tfig lines_out "$WORK/stats")" = 10 ]'
	assert_equal "$(tfig seconds_behind "$WORK/stats")" 0
	assert_equal "$(wc -l <"$WORK/out")" 10
	assert_equal "$(cat "$WORK/err")" ""
}

@test "pg-cdc-tail --metrics: a Prometheus textfile promtool accepts, with a sample per table" {
	new_source_db
	sql -d "$DB" -c "CREATE TABLE k (id int PRIMARY KEY); SELECT cdc.enable('k')" >/dev/null
	orders 5
	sql -d "$DB" -c "INSERT INTO k VALUES (1), (2)"
	run --separate-stderr pg-cdc-tail -d "$DB" --metrics="$WORK/pgcdc.prom"
	assert_success
	assert_equal "$stderr" ""
	run promtool check metrics <"$WORK/pgcdc.prom"
	assert_success
	assert_output ""
	grep -qx 'pgcdc_lines_out_total{stage="pg-cdc-tail"} 7' "$WORK/pgcdc.prom"
	grep -qx 'pgcdc_lines_acknowledged_total{stage="pg-cdc-tail"} 7' "$WORK/pgcdc.prom"
	grep -qx 'pgcdc_changes_behind{stage="pg-cdc-tail"} 0' "$WORK/pgcdc.prom"
	grep -qx 'pgcdc_table_changes_behind{stage="pg-cdc-tail",table="public.k"} 0' "$WORK/pgcdc.prom"
	grep -qx 'pgcdc_table_changes_behind{stage="pg-cdc-tail",table="public.orders"} 0' "$WORK/pgcdc.prom"
	grep -qx '# TYPE pgcdc_seconds_behind gauge' "$WORK/pgcdc.prom"
}

@test "pg-cdc-tail SIGUSR1: a line on demand while following, the counts moved with the changes" {
	new_source_db
	pg-cdc-tail -d "$DB" -t orders -f >"$WORK/out" 2>"$WORK/err" &
	BG+=($!)
	wait_for 10 '[ "$(sql -d "$DB" -c "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = '"'pg-cdc-tail'"' AND datname = '"'$DB'"'")" = 1 ]'
	orders 7
	wait_for 20 '[ "$(wc -l <"$WORK/out")" = 7 ]'
	assert_equal "$(grep -c . "$WORK/err")" 0
	kill -USR1 "${BG[0]}"
	wait_for 10 'grep -q "^{\"stage\":\"pg-cdc-tail\"" "$WORK/err"'
	assert_equal "$(tfig lines_out "$WORK/err")" 7
	assert_equal "$(tfig changes_behind "$WORK/err")" 0
	orders 2
	wait_for 20 '[ "$(wc -l <"$WORK/out")" = 9 ]'
	kill -USR1 "${BG[0]}"
	wait_for 10 '[ "$(grep -c "^{\"stage\":\"pg-cdc-tail\"" "$WORK/err")" = 2 ]'
	assert_equal "$(tfig lines_out "$WORK/err")" 9
	assert_equal "$(tfig pos "$WORK/err")" 9
}

@test "pg-cdc-tail on systemd's notify socket: READY=1 once connected, STATUS= with the summary, STOPPING=1" {
	new_source_db
	orders 4
	socat -u UNIX-RECV:"$WORK/notify" - >"$WORK/heard" 2>"$WORK/socat.err" 3>&- &
	BG+=($!)
	wait_for 10 '[ -S "$WORK/notify" ]'
	NOTIFY_SOCKET=$WORK/notify WATCHDOG_USEC=400000 pg-cdc-tail -d "$DB" -t orders -f \
		>"$WORK/out" 2>"$WORK/err" &
	BG+=($!)
	wait_for 20 'grep -q "^STATUS=4 lines written, 4 acknowledged; 0 changes behind (0.0 s)" "$WORK/heard"'
	local before
	before=$(grep -c '^WATCHDOG=1' "$WORK/heard")
	sleep 1
	[ "$(grep -c '^WATCHDOG=1' "$WORK/heard")" -ge $((before + 3)) ]
	kill -TERM "${BG[1]}"
	wait "${BG[1]}"
	wait_for 10 'grep -q "^STOPPING=1" "$WORK/heard"'
	assert_equal "$(head -n 2 "$WORK/heard")" "READY=1
STATUS=connected, following 1 table"
	assert_equal "$(cat "$WORK/err")" ""
}

@test "pg-upsert: a stats file that cannot be opened is one error and exit 1, nothing applied" {
	stream 10
	run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders --stats=1 --stats-file=/nonexistent/stats <"$WORK/events"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: cannot open stats file "/nonexistent/stats": No such file or directory'
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 0
}
