#!/usr/bin/env bats
# pg-cdc-tail in trigger mode against a real PostgreSQL.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	new_source_db
	WORK=$(mktemp -d)
}

teardown() {
	[ -n "${BG:-}" ] && kill -9 $BG 2>/dev/null
	[ -n "${PSQL_A:-}" ] && kill $PSQL_A 2>/dev/null
	rm -rf "$WORK"
}

# insert_orders N [STATUS]: N new orders in one transaction
insert_orders() {
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		SELECT gen_random_uuid(), gen_random_uuid(), '${2:-created}', g, 'EUR', 'DE'
		FROM generate_series(1, $1) g"
}

# the value of a top-level field in each event line of a file
field() {
	sed -n "s/.*\"$1\":\\([0-9a-z]*\\).*/\\1/p" "$2"
}

idle_in_transaction() {
	sql -d "$DB" -c "SELECT count(*) FROM pg_stat_activity
		WHERE state = 'idle in transaction' AND datname = '$DB'"
}

log_count() {
	sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log"
}

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr pg-cdc-tail --help
	assert_success
	assert_line --index 0 "Usage: pg-cdc-tail [OPTION]... [-t TABLE]..."
	assert_equal "$stderr" ""
}

@test "--help lists the report options" {
	run --separate-stderr pg-cdc-tail --help
	assert_success
	assert_line "      --stats=SECONDS     a JSON line of figures on stderr every SECONDS (and on SIGUSR1)"
	assert_line "      --stats-file=FILE   append those lines to FILE instead"
	assert_line "      --metrics=FILE      keep the figures in FILE for Prometheus (node_exporter's textfile)"
}

@test "--stats out of range is a usage error, exit 2" {
	run --separate-stderr pg-cdc-tail -d "$DB" --stats=0
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "pg-cdc-tail: error: --stats must be in range 1..86400"
}

@test "a --stats-file that cannot be opened is one error before connecting, exit 1" {
	run --separate-stderr pg-cdc-tail -d "$DB" --stats-file=/nonexistent/stats
	assert_failure 1
	assert_equal "$stderr" 'pg-cdc-tail: cannot open stats file "/nonexistent/stats": No such file or directory'
	assert_output ""
}

@test "--help and --version exit 1 when standard output cannot be written" {
	run --separate-stderr sh -c 'pg-cdc-tail --help >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: cannot write the help: No space left on device"
	run --separate-stderr sh -c 'pg-cdc-tail --version >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: cannot write the version: No space left on device"
}

@test "--version prints the version" {
	run pg-cdc-tail --version
	assert_success
	assert_output --regexp '^pg-cdc-tail [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "an unknown option is a usage error" {
	run --separate-stderr pg-cdc-tail --bogus -t orders
	assert_failure 2
	assert_equal "${stderr_lines[1]}" 'Try "pg-cdc-tail --help" for more information.'
}

@test "without -t, trigger mode reads every captured table: here the orders, as -t orders does" {
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		SELECT gen_random_uuid(), gen_random_uuid(), 'new', g, 'EUR', 'DE' FROM generate_series(1, 5) g"
	run --separate-stderr pg-cdc-tail -d "$DB" -n all
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 5
	assert_equal "$output" "$(pg-cdc-tail -d "$DB" -n one -t orders)"
}

@test "an out-of-range number is a usage error" {
	run --separate-stderr pg-cdc-tail -d "$DB" -t orders --batch=0
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "pg-cdc-tail: error: --batch must be in range 1..1000000"
	run --separate-stderr pg-cdc-tail -d "$DB" -t orders --poll=abc
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'pg-cdc-tail: error: invalid value "abc" for option --poll'
}

@test "an unknown table is a one-line error" {
	run --separate-stderr pg-cdc-tail -d "$DB" -t nosuch
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" 'pg-cdc-tail: table "nosuch" does not exist'
}

@test "a table without capture is a one-line error" {
	sql -d "$DB" -c "CREATE TABLE plain (id int PRIMARY KEY)"
	run --separate-stderr pg-cdc-tail -d "$DB" -t plain
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: table \"public.plain\" has no capture enabled (run SELECT cdc.enable('public.plain'))"
}

@test "a database without the capture machinery is a one-line error" {
	createdb "bare_$BATS_TEST_NUMBER"
	run --separate-stderr pg-cdc-tail -d "bare_$BATS_TEST_NUMBER" -t orders
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: capture is not installed in database \"bare_$BATS_TEST_NUMBER\" (run sql/cdc.sql)"
}

@test "a refused connection is a one-line error" {
	run --separate-stderr pg-cdc-tail -d "host=$WORK port=1" -t orders
	assert_failure 1
	assert_equal "${#stderr_lines[@]}" 1
	assert_regex "$stderr" '^pg-cdc-tail: connection failed: .*No such file or directory'
}

@test "the backlog already in the log is emitted on first start (bug 3)" {
	insert_orders 25
	run --separate-stderr pg-cdc-tail -d "$DB" -t orders
	assert_success
	assert_equal "${#lines[@]}" 25
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '"op":"c","table":"public.orders"')" 25
}

@test "each event has the documented fields in order" {
	insert_orders 1
	run pg-cdc-tail -d "$DB" -t orders
	assert_success
	assert_output --regexp '^\{"op":"c","table":"public\.orders","key":\{"id":"[0-9a-f-]{36}"\},"before":null,"after":\{"id":"[0-9a-f-]{36}",.*"version":1\},"pos":1,"txid":[0-9]+,"ts_ms":[0-9]{13}\}$'
}

@test "a second run resumes after the stored position" {
	insert_orders 3
	pg-cdc-tail -d "$DB" -t orders >"$WORK/1"
	insert_orders 2
	pg-cdc-tail -d "$DB" -t orders >"$WORK/2"
	assert_equal "$(wc -l <"$WORK/1")" 3
	assert_equal "$(field pos "$WORK/2" | tr '\n' ' ')" "4 5 "
}

@test "consumers keep separate positions" {
	insert_orders 4
	pg-cdc-tail -d "$DB" -t orders -n one >"$WORK/1"
	pg-cdc-tail -d "$DB" -t orders -n two >"$WORK/2"
	assert_equal "$(wc -l <"$WORK/1")" 4
	assert_equal "$(wc -l <"$WORK/2")" 4
	assert_equal "$(sql -d "$DB" -c "SELECT string_agg(name, ',' ORDER BY name) FROM cdc.consumer")" "one,two"
}

@test "two updates give versions 1, 2 and 3 in order (bug 1)" {
	insert_orders 1
	sql -d "$DB" -c "UPDATE orders SET status = 'paid'"
	sql -d "$DB" -c "UPDATE orders SET status = 'shipped'"
	pg-cdc-tail -d "$DB" -t orders >"$WORK/out"
	assert_equal "$(sed -n 's/.*"after":{[^}]*"version":\([0-9]*\)}.*/\1/p' "$WORK/out" | tr '\n' ' ')" "1 2 3 "
	assert_equal "$(sed -n 's/.*"before":{[^}]*"version":\([0-9]*\)}.*/\1/p' "$WORK/out" | tr '\n' ' ')" "1 2 "
	assert_equal "$(field pos "$WORK/out" | tr '\n' ' ')" "1 2 3 "
}

@test "a delete carries the old row and no new row (bug 5)" {
	insert_orders 1 paid
	sql -d "$DB" -c "DELETE FROM orders"
	pg-cdc-tail -d "$DB" -t orders >"$WORK/out"
	run tail -n 1 "$WORK/out"
	assert_output --regexp '^\{"op":"d",.*"before":\{"id":"[0-9a-f-]{36}",.*"status":"paid",.*\},"after":null,"pos":2,'
}

@test "an update of the key is a delete of the old key and an insert of the new, naming the old" {
	sql -d "$DB" -c "CREATE TABLE k (id int PRIMARY KEY, v text); SELECT cdc.enable('k');
		INSERT INTO k VALUES (1, 'a'); UPDATE k SET id = 2" >/dev/null
	run pg-cdc-tail -d "$DB" -t k
	assert_success
	assert_line --index 1 --regexp '^\{"op":"d","table":"public\.k","key":\{"id":1\},"before":\{"id":1,"v":"a"\},"after":null,"pos":2,'
	assert_line --index 2 --regexp '^\{"op":"c","table":"public\.k","key":\{"id":2\},"old_key":\{"id":1\},"before":null,"after":\{"id":2,"v":"a"\},"pos":3,'
}

@test "a transaction that commits after a later one is not lost (bug 2)" {
	mkfifo "$WORK/a"
	psql -X -q -d "$DB" <"$WORK/a" >"$WORK/a.out" 2>&1 3>&- &
	PSQL_A=$!
	exec 4>"$WORK/a"
	# A takes log id 1 and stays open
	echo "BEGIN; INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
	      VALUES (gen_random_uuid(), gen_random_uuid(), 'from-a', 1, 'EUR', 'DE');" >&4
	wait_for 10 '[ "$(idle_in_transaction)" = 1 ]'
	# B takes log id 2 and commits first
	insert_orders 1 from-b
	pg-cdc-tail -d "$DB" -t orders >"$WORK/1"
	assert_equal "$(field pos "$WORK/1")" 2
	echo "COMMIT;" >&4
	exec 4>&-
	wait $PSQL_A
	PSQL_A=
	pg-cdc-tail -d "$DB" -t orders >"$WORK/2"
	assert_equal "$(field pos "$WORK/2")" 1
	grep -q '"status":"from-a"' "$WORK/2"
}

@test "a rolled-back transaction emits nothing" {
	sql -d "$DB" -c "BEGIN; INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 1, 'EUR', 'DE'); ROLLBACK;"
	insert_orders 1
	run pg-cdc-tail -d "$DB" -t orders
	assert_success
	assert_equal "${#lines[@]}" 1
	assert_output --partial '"pos":2,'
}

@test "values round-trip losslessly" {
	sql -d "$DB" -c "CREATE TABLE p (id bigint PRIMARY KEY, n numeric(38,10), i bigint, s text,
		t timestamptz, j jsonb, js json, a int[], ta text[], z text, f float8, b bytea)
		; SELECT cdc.enable('p')" >/dev/null
	sql -d "$DB" -c "INSERT INTO p VALUES
		(1, 1234567890123456789012345678.0123456789, 9223372036854775807,
		 E'quote\" back\\\\ slash\nnew\tline é 日本 \U0001F600', '2026-11-26 12:34:56.789012+05:30',
		 '{\"a\": [1, 2.50, null], \"big\": 123456789012345678901234567890}',
		 E'{\"pretty\":\n  [1,\n 2]}', '{1,NULL,3}', '{\"x,y\",\"\"}', NULL, 1.0e-300, '\\x00ff'),
		(-9223372036854775808, -0.0000000001, -9223372036854775808, '', 'infinity', '[]', '1', '{}', '{}', 'z', 'NaN', NULL)"
	pg-cdc-tail -d "$DB" -t p >"$WORK/out"
	assert_equal "$(wc -l <"$WORK/out")" 2
	grep -q '"n":1234567890123456789012345678.0123456789,"i":9223372036854775807,' "$WORK/out"
	grep -q '"id":-9223372036854775808,"n":-0.0000000001,' "$WORK/out"
	# Feed each emitted row back through json_populate_record: it equals the
	# source row (the json column up to its insignificant whitespace).
	while IFS= read -r line; do
		run sql -d "$DB" -v line="$line" <<-'SQL'
			SELECT count(*) FROM p JOIN json_populate_record(NULL::p, (:'line'::json)->'after') r
			ON (p.id, p.n, p.i, p.s, p.t, p.j, p.a, p.ta, p.z, p.f, p.b)::text
			 = (r.id, r.n, r.i, r.s, r.t, r.j, r.a, r.ta, r.z, r.f, r.b)::text
			AND p.js::jsonb = r.js::jsonb
		SQL
		assert_output 1
	done <"$WORK/out"
}

@test "a json value with raw newlines stays on one line" {
	sql -d "$DB" -c "CREATE TABLE nl (id int PRIMARY KEY, js json); SELECT cdc.enable('nl');
		INSERT INTO nl VALUES (1, E'{\"a\":\n\"b\\\\n\"\r\n}')" >/dev/null
	run pg-cdc-tail -d "$DB" -t nl
	assert_success
	assert_equal "${#lines[@]}" 1
	assert_output --partial '"after":{"id":1,"js":{"a":"b\n"}}'
}

@test "several tables are read in one run" {
	sql -d "$DB" -c "CREATE TABLE other (id int PRIMARY KEY); SELECT cdc.enable('other');
		INSERT INTO other VALUES (1), (2)" >/dev/null
	insert_orders 3
	run pg-cdc-tail -d "$DB" -t orders -t other
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '"table":"public.orders"')" 3
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '"table":"public.other"')" 2
}

@test "--snapshot emits existing rows as op r, then only later changes" {
	sql -d "$DB" -c "CREATE TABLE s (id int PRIMARY KEY, v text);
		INSERT INTO s VALUES (1, 'before capture'), (2, 'also before');
		SELECT cdc.enable('s'); INSERT INTO s VALUES (3, 'after capture')" >/dev/null
	pg-cdc-tail -d "$DB" -t s --snapshot >"$WORK/1"
	assert_equal "$(grep -c '"op":"r"' "$WORK/1")" 3
	assert_equal "$(wc -l <"$WORK/1")" 3
	grep -q '"op":"r","table":"public.s","key":{"id":1},"before":null,"after":{"id":1,"v":"before capture"},"pos":0,"txid":null,' "$WORK/1"
	sql -d "$DB" -c "UPDATE s SET v = 'changed' WHERE id = 2"
	run pg-cdc-tail -d "$DB" -t s
	assert_equal "${#lines[@]}" 1
	assert_output --partial '"op":"u","table":"public.s","key":{"id":2}'
}

@test "-f wakes on NOTIFY, not on the poll interval" {
	pg-cdc-tail -d "$DB" -t orders -f --poll=600000 >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	sleep 0.5
	insert_orders 1
	wait_for 3 'test -s "$WORK/out"'
	insert_orders 1
	wait_for 3 'test "$(wc -l <"$WORK/out")" = 2'
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(cat "$WORK/err")" ""
}

@test "SIGTERM stops -f cleanly with status 0 and the position stored" {
	insert_orders 5
	pg-cdc-tail -d "$DB" -t orders -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 5 'test "$(wc -l <"$WORK/out")" = 5'
	kill -TERM $BG
	wait $BG
	BG=
	run pg-cdc-tail -d "$DB" -t orders
	assert_output ""
}

@test "kill -9 while draining a large backlog: a restart emits the rest, nothing missing" {
	insert_orders 50000
	pg-cdc-tail -d "$DB" -t orders --batch=500 >"$WORK/1" 3>&- &
	BG=$!
	wait_for 20 'test "$(wc -l <"$WORK/1")" -gt 5000'
	kill -9 $BG
	wait $BG || true
	BG=
	pg-cdc-tail -d "$DB" -t orders --batch=500 >"$WORK/2"
	# every pos from 1 to 50000 is present; repeats only after the stored position
	cat "$WORK/1" "$WORK/2" | grep -o '"pos":[0-9]*' | sort -u >"$WORK/all"
	assert_equal "$(wc -l <"$WORK/all")" 50000
	first=$(head -n 1 "$WORK/2" | grep -o '"pos":[0-9]*' | cut -d: -f2)
	last=$(grep -c . "$WORK/1")
	[ "$first" -le $((last + 1)) ]
	[ "$first" -ge $((last - 500)) ]
}

@test "with --ack the position follows the ack file; kill -9 resumes right after it" {
	insert_orders 100
	pg-cdc-tail -d "$DB" -t orders -f --ack="$WORK/ack" --batch=10 >"$WORK/1" 3>&- &
	BG=$!
	wait_for 5 'test "$(wc -l <"$WORK/1")" = 100'
	[ "$(cat "$WORK/ack")" = 0 ]
	# nothing is acknowledged yet: nothing stored
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM cdc.consumer")" 0
	echo 37 >"$WORK/ack.new" && mv "$WORK/ack.new" "$WORK/ack"
	wait_for 5 'test "$(sql -d "$DB" -c "SELECT last_id FROM cdc.consumer")" = 37'
	kill -9 $BG
	wait $BG || true
	BG=
	pg-cdc-tail -d "$DB" -t orders >"$WORK/2"
	assert_equal "$(head -n 1 "$WORK/2" | grep -o '"pos":[0-9]*')" '"pos":38'
	assert_equal "$(wc -l <"$WORK/2")" 63
}

@test "--window bounds the unacknowledged lines" {
	insert_orders 50
	pg-cdc-tail -d "$DB" -t orders -f --ack="$WORK/ack" --window=10 >"$WORK/out" 3>&- &
	BG=$!
	wait_for 5 'test "$(wc -l <"$WORK/out")" = 10'
	sleep 0.5
	assert_equal "$(wc -l <"$WORK/out")" 10
	echo 10 >"$WORK/ack.new" && mv "$WORK/ack.new" "$WORK/ack"
	wait_for 5 'test "$(wc -l <"$WORK/out")" = 20'
	kill -TERM $BG
	wait $BG || true
	BG=
}

@test "without -f and with --ack it waits for the last acknowledgement, then stores" {
	insert_orders 3
	( sleep 0.5; echo 3 >"$WORK/ack.new"; mv "$WORK/ack.new" "$WORK/ack" ) &
	run --separate-stderr pg-cdc-tail -d "$DB" -t orders --ack="$WORK/ack"
	assert_success
	assert_equal "${#lines[@]}" 3
	assert_equal "$(sql -d "$DB" -c "SELECT snap_hi IS NULL FROM cdc.consumer")" t
}

@test "without -f, unacknowledged lines at exit are an error and are sent again" {
	insert_orders 3
	run --separate-stderr pg-cdc-tail -d "$DB" -t orders --ack="$WORK/ack" --ack-timeout=200
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: downstream acknowledged 0 of 3 lines; the rest will be sent again"
	run pg-cdc-tail -d "$DB" -t orders
	assert_equal "${#lines[@]}" 3
}

@test "--prune deletes the log rows every consumer has passed, and no others" {
	insert_orders 10
	pg-cdc-tail -d "$DB" -t orders -n slow >/dev/null
	insert_orders 5
	pg-cdc-tail -d "$DB" -t orders -n fast --prune >/dev/null
	# "slow" has not seen the last 5: they stay
	assert_equal "$(log_count)" 5
	pg-cdc-tail -d "$DB" -t orders -n slow --prune >/dev/null
	assert_equal "$(log_count)" 0
	assert_equal "$(sql -d "$DB" -c "SELECT cdc.prune('orders')")" 0
}

@test "-f reconnects after the server restarts and goes on" {
	insert_orders 2
	pg-cdc-tail -d "$DB" -t orders -f --poll=200 >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 5 'test "$(wc -l <"$WORK/out")" = 2'
	pg_restart
	insert_orders 3
	wait_for 15 'test "$(wc -l <"$WORK/out")" = 5'
	grep -q '^pg-cdc-tail: warning: connection lost: ' "$WORK/err"
	kill -TERM $BG
	wait $BG
	BG=
}

@test "order-sim --clients 8 under a following tail: every log row once" {
	pg-cdc-tail -d "$DB" -t orders -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	order-sim -d "$DB" --clients 8 --count 4000 --rate 0 --update-ratio 0.4 --delete-ratio 0.1 --seed 7 2>/dev/null
	n=$(log_count)
	wait_for 20 'test "$(wc -l <"$WORK/out")" -ge "$n"'
	sleep 0.3
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(wc -l <"$WORK/out")" "$n"
	assert_equal "$(grep -o '"pos":[0-9]*' "$WORK/out" | sort -u | wc -l)" "$n"
	assert_equal "$(sql -d "$DB" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders_cdc_log")" \
		"$(grep -o '"pos":[0-9]*' "$WORK/out" | cut -d: -f2 | sort -n | paste -sd,)"
}

@test "--snapshot rows round-trip losslessly, whatever the column names" {
	sql -d "$DB" <<-'SQL'
		CREATE TABLE p (t numeric(38,10) PRIMARY KEY, "row" bigint, "we""ird" text, js jsonb);
		INSERT INTO p VALUES (-1234567890123456789012345678.0123456789, -9223372036854775808,
			E'a\nb"c\u00e9', '{"x": 1.10}');
		SELECT cdc.enable('p');
	SQL
	run pg-cdc-tail -d "$DB" -t p --snapshot
	assert_success
	assert_output --partial '{"op":"r","table":"public.p","key":{"t":-1234567890123456789012345678.0123456789},"before":null,"after":{"t":-1234567890123456789012345678.0123456789,"row":-9223372036854775808,"we\"ird":"a\nb\"cé","js":{"x": 1.10}},"pos":0,"txid":null,"ts_ms":'
	run sql -d "$DB" -v line="$output" <<-'SQL'
		SELECT count(*) FROM p JOIN json_populate_record(NULL::p, (:'line'::json)->'after') r
		ON (p.*)::text = (r.*)::text
	SQL
	assert_output 1
}

@test "what it emits survives a crash of the source, even with synchronous_commit=off" {
	# the test cluster commits asynchronously: a commit is visible before it is on disk
	insert_orders 5000
	pg-cdc-tail -d "$DB" -t orders >"$WORK/out"
	pg_kill
	pg_resume
	assert_equal "$(wc -l <"$WORK/out")" 5000
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM orders")" 5000
}

@test "-f under a stream of commits: every change once, across LISTEN and UNLISTEN, a round at most every 5 ms" {
	pg-cdc-tail -d "$DB" -t orders -f -v >"$WORK/out" 2>"$WORK/err" &
	BG=$!
	wait_for 5 'grep -q "rows, position" "$WORK/err"'
	start=$(date +%s%3N)
	for i in $(seq 400); do
		echo "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
			VALUES (gen_random_uuid(), gen_random_uuid(), 'created', $i, 'EUR', 'DE');"
	done | sql -d "$DB"
	wait_for 10 'test "$(wc -l <"$WORK/out")" = 400'
	kill -TERM $BG
	wait $BG
	BG=
	ms=$(($(date +%s%3N) - start))
	rounds=$(grep -c 'rows, position' "$WORK/err")
	[ "$rounds" -le $((ms / 5 + 3)) ]
	assert_equal "$(field pos "$WORK/out" | sort -un | wc -l)" 400
}
