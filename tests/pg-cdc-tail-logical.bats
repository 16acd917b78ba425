#!/usr/bin/env bats
# pg-cdc-tail in logical mode (pgoutput over the replication protocol)
# against a real PostgreSQL with wal_level=logical.

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
	SLOT="slot_${BATS_TEST_NUMBER}"
	LOGICAL=(pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --publication=pub)
	WORK=$(mktemp -d)
}

teardown() {
	[ -n "${BG:-}" ] && kill -9 $BG 2>/dev/null
	[ -n "${TAIL:-}" ] && kill -9 $TAIL 2>/dev/null
	[ -n "${PSQL_A:-}" ] && kill $PSQL_A 2>/dev/null
	# a slot holds WAL back and its database open: drop it once nothing uses it
	wait_for 10 "[ \"\$(sql -c \"SELECT count(*) FROM pg_replication_slots
		WHERE slot_name = '$SLOT' AND active\")\" = 0 ]" || true
	sql -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = '$SLOT'" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}

# tail_l [OPTION]...: pg-cdc-tail on this test's database, slot and publication
# (in the background run "${LOGICAL[@]}" itself, so that $! is its pid)
tail_l() {
	"${LOGICAL[@]}" "$@"
}

# create the slot (and publication of orders) before the changes of a test
create_slot() {
	tail_l --create-slot -t "${1:-orders}" >/dev/null
}

insert_orders() {
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		SELECT gen_random_uuid(), gen_random_uuid(), '${2:-created}', g, 'EUR', 'DE'
		FROM generate_series(1, $1) g"
}

field() {
	sed -n "s/.*\"$1\":\\([0-9a-z]*\\).*/\\1/p" "$2"
}

confirmed() {
	sql -c "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = '$SLOT'"
}

idle_in_transaction() {
	sql -d "$DB" -c "SELECT count(*) FROM pg_stat_activity
		WHERE state = 'idle in transaction' AND datname = '$DB'"
}

@test "logical mode: usage errors exit 2 with a hint" {
	run --separate-stderr pg-cdc-tail --mode=logical --publication=pub
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "pg-cdc-tail: error: logical mode needs a slot (use --slot=NAME)"
	run --separate-stderr pg-cdc-tail --mode=logical --slot=s
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "pg-cdc-tail: error: logical mode needs a publication (use --publication=NAME)"
	run --separate-stderr pg-cdc-tail -t orders --slot=s
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "pg-cdc-tail: error: --slot, --publication, --create-slot and --drop-slot need --mode=logical"
	run --separate-stderr pg-cdc-tail --mode=wal -t orders
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'pg-cdc-tail: error: invalid value "wal" for option --mode (trigger or logical)'
	run --separate-stderr pg-cdc-tail --mode=logical --slot=s --publication=p --prune
	assert_failure 2
}

@test "a missing slot or publication is a one-line error unless --create-slot" {
	run --separate-stderr tail_l -t orders
	assert_failure 1
	assert_equal "$stderr" 'pg-cdc-tail: publication "pub" does not exist (use --create-slot, or CREATE PUBLICATION)'
	sql -d "$DB" -c "CREATE PUBLICATION pub FOR TABLE orders"
	run --separate-stderr tail_l -t orders
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: replication slot \"$SLOT\" does not exist (use --create-slot)"
	run --separate-stderr tail_l -t nosuch --create-slot
	assert_failure 1
	assert_equal "$stderr" 'pg-cdc-tail: table "nosuch" does not exist'
}

@test "--create-slot is idempotent and adds -t tables to the publication; --drop-slot drops" {
	sql -d "$DB" -c "CREATE TABLE other (id int PRIMARY KEY)"
	run --separate-stderr tail_l --create-slot -t orders
	assert_success
	run --separate-stderr tail_l --create-slot -t orders -t other
	assert_success
	assert_equal "$(sql -d "$DB" -c "SELECT string_agg(tablename, ',' ORDER BY tablename)
		FROM pg_publication_tables WHERE pubname = 'pub'")" "orders,other"
	assert_equal "$(sql -c "SELECT plugin FROM pg_replication_slots WHERE slot_name = '$SLOT'")" pgoutput
	run --separate-stderr tail_l -t other
	assert_success
	run --separate-stderr pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --drop-slot
	assert_success
	assert_equal "$(sql -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" 0
	run --separate-stderr pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --drop-slot
	assert_success
}

@test "logical: changes since the slot was made are emitted with the documented fields" {
	insert_orders 2 before-slot
	create_slot
	insert_orders 3
	run --separate-stderr tail_l
	assert_success
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 --regexp '^\{"op":"c","table":"public\.orders","key":\{"id":"[0-9a-f-]{36}"\},"before":null,"after":\{"id":"[0-9a-f-]{36}",.*"version":1\},"pos":[0-9]+,"txid":[0-9]+,"ts_ms":[0-9]{13}\}$'
	refute_output --partial before-slot
	# pos is the change's LSN: increasing, and at most the WAL end
	field pos <(printf '%s\n' "${lines[@]}") >"$WORK/pos"
	sort -n -c "$WORK/pos"
	[ "$(tail -n 1 "$WORK/pos")" -le "$(sql -c "SELECT pg_current_wal_lsn() - '0/0'")" ]
}

@test "logical: a second run resumes after the confirmed position" {
	create_slot
	insert_orders 3
	tail_l >"$WORK/1"
	insert_orders 2 second
	tail_l >"$WORK/2"
	assert_equal "$(wc -l <"$WORK/1")" 3
	assert_equal "$(wc -l <"$WORK/2")" 2
	assert_equal "$(grep -c second "$WORK/2")" 2
	run tail_l
	assert_output ""
}

@test "logical: updates give versions 1, 2, 3; before as REPLICA IDENTITY gives it" {
	create_slot
	insert_orders 1
	sql -d "$DB" -c "UPDATE orders SET status = 'paid'"
	sql -d "$DB" -c "ALTER TABLE orders REPLICA IDENTITY FULL; UPDATE orders SET status = 'shipped'"
	tail_l >"$WORK/out"
	assert_equal "$(sed -n 's/.*"after":{[^}]*"version":\([0-9]*\)}.*/\1/p' "$WORK/out" | tr '\n' ' ')" "1 2 3 "
	# default identity: no old row for an update that keeps the key; FULL: the whole old row
	assert_equal "$(sed -n 2p "$WORK/out" | grep -c '"before":null')" 1
	sed -n 3p "$WORK/out" | grep -q '"before":{"id":"[0-9a-f-]*","user_id":"[0-9a-f-]*","status":"paid",.*"version":2}'
	assert_equal "$(grep -o '"op":"[a-z]"' "$WORK/out" | tr '\n' ' ')" '"op":"c" "op":"u" "op":"u" '
}

@test "logical: a delete carries the key (or the whole row with FULL) and no new row" {
	create_slot
	insert_orders 2 paid
	sql -d "$DB" -c "DELETE FROM orders WHERE amount_cents = 1"
	sql -d "$DB" -c "ALTER TABLE orders REPLICA IDENTITY FULL; DELETE FROM orders"
	tail_l >"$WORK/out"
	sed -n 3p "$WORK/out" | grep -Eq '^\{"op":"d","table":"public\.orders","key":\{"id":"[0-9a-f-]{36}"\},"before":\{"id":"[0-9a-f-]{36}"\},"after":null,'
	sed -n 4p "$WORK/out" | grep -Eq '^\{"op":"d",.*"before":\{"id":"[0-9a-f-]{36}",.*"status":"paid",.*\},"after":null,'
}

@test "logical: an update of the key is a delete of the old key and an insert of the new, naming the old" {
	sql -d "$DB" -c "CREATE TABLE k (id int PRIMARY KEY, v text)"
	create_slot k
	sql -d "$DB" -c "INSERT INTO k VALUES (1, 'a'); UPDATE k SET id = 2"
	run tail_l
	assert_success
	assert_line --index 1 --regexp '^\{"op":"d","table":"public\.k","key":\{"id":1\},"before":\{"id":1\},"after":null,"pos":[0-9]+,'
	assert_line --index 2 --regexp '^\{"op":"c","table":"public\.k","key":\{"id":2\},"old_key":\{"id":1\},"before":null,"after":\{"id":2,"v":"a"\},"pos":[0-9]+,'
}

@test "logical: transactions come in commit order, a late commit is not lost" {
	create_slot
	mkfifo "$WORK/a"
	psql -X -q -d "$DB" <"$WORK/a" >"$WORK/a.out" 2>&1 3>&- &
	PSQL_A=$!
	exec 4>"$WORK/a"
	echo "BEGIN; INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
	      VALUES (gen_random_uuid(), gen_random_uuid(), 'from-a', 1, 'EUR', 'DE');" >&4
	wait_for 10 '[ "$(idle_in_transaction)" = 1 ]'
	insert_orders 1 from-b
	tail_l >"$WORK/1"
	assert_equal "$(wc -l <"$WORK/1")" 1
	grep -q from-b "$WORK/1"
	echo "COMMIT;" >&4
	exec 4>&-
	wait $PSQL_A
	PSQL_A=
	tail_l >"$WORK/2"
	assert_equal "$(wc -l <"$WORK/2")" 1
	grep -q from-a "$WORK/2"
}

@test "logical: a rolled-back transaction emits nothing" {
	create_slot
	sql -d "$DB" -c "BEGIN; INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 1, 'EUR', 'DE'); ROLLBACK;"
	insert_orders 1
	run --separate-stderr tail_l
	assert_success
	assert_equal "${#lines[@]}" 1
	refute_output --partial '"status":"x"'
}

@test "logical: values round-trip losslessly, converted by column type" {
	sql -d "$DB" -c "CREATE DOMAIN cents AS bigint; CREATE TABLE p (id bigint PRIMARY KEY,
		n numeric(38,10), i bigint, s text, t timestamptz, ts timestamp, j jsonb, js json,
		a int[], ta text[], z text, f float8, b bytea, ok bool, c cents, d date)"
	create_slot p
	sql -d "$DB" -c "INSERT INTO p VALUES
		(1, 1234567890123456789012345678.0123456789, 9223372036854775807,
		 E'quote\" back\\\\ slash\nnew\tline é 日本 \U0001F600', '2026-11-26 12:34:56.789012+05:30',
		 '2026-11-26 12:34:56', '{\"a\": [1, 2.50, null], \"big\": 123456789012345678901234567890}',
		 E'{\"pretty\":\n  [1,\n 2]}', '{1,NULL,3}', '{\"x,y\",\"\"}', NULL, 1.0e-300, '\\x00ff',
		 true, 42, '2026-11-26'),
		(-9223372036854775808, -0.0000000001, -9223372036854775808, '', 'infinity', '-infinity',
		 '[]', '1', '{}', '{}', 'z', 'NaN', NULL, false, -1, 'infinity')"
	tail_l >"$WORK/out"
	assert_equal "$(wc -l <"$WORK/out")" 2
	grep -q '"n":1234567890123456789012345678.0123456789,"i":9223372036854775807,' "$WORK/out"
	grep -q '"id":-9223372036854775808,"n":-0.0000000001,' "$WORK/out"
	grep -q '"t":"2026-11-26T07:04:56.789012+00:00","ts":"2026-11-26T12:34:56",' "$WORK/out"
	grep -q '"f":"NaN","b":null,"ok":false,"c":-1,"d":"infinity"' "$WORK/out"
	grep -q '"ok":true,"c":42,' "$WORK/out"
	while IFS= read -r line; do
		run sql -d "$DB" -v line="$line" <<-'SQL'
			SELECT count(*) FROM p JOIN json_populate_record(NULL::p, (:'line'::json)->'after') r
			ON (p.id, p.n, p.i, p.s, p.t, p.ts, p.j, p.a, p.ta, p.z, p.f, p.b, p.ok, p.c, p.d)::text
			 = (r.id, r.n, r.i, r.s, r.t, r.ts, r.j, r.a, r.ta, r.z, r.f, r.b, r.ok, r.c, r.d)::text
			AND p.js::jsonb = r.js::jsonb
		SQL
		assert_output 1
	done <"$WORK/out"
}

@test "logical: a json value with raw newlines stays on one line" {
	sql -d "$DB" -c "CREATE TABLE nl (id int PRIMARY KEY, js json)"
	create_slot nl
	sql -d "$DB" -c "INSERT INTO nl VALUES (1, E'{\"a\":\n\"b\\\\n\"\r\n}')"
	run tail_l
	assert_success
	assert_equal "${#lines[@]}" 1
	assert_output --partial '"after":{"id":1,"js":{"a":"b\n"}}'
}

@test "logical: -t picks tables of the publication; without -t, all of them" {
	sql -d "$DB" -c "CREATE TABLE two (id int PRIMARY KEY)"
	tail_l --create-slot -t orders -t two >/dev/null
	insert_orders 2
	sql -d "$DB" -c "INSERT INTO two VALUES (1), (2), (3)"
	tail_l -t two >"$WORK/two"
	assert_equal "$(grep -c '"table":"public.two"' "$WORK/two")" 3
	assert_equal "$(wc -l <"$WORK/two")" 3
	insert_orders 1
	sql -d "$DB" -c "INSERT INTO two VALUES (4)"
	tail_l >"$WORK/all"
	assert_equal "$(wc -l <"$WORK/all")" 2
	run --separate-stderr tail_l -t pg_class
	assert_failure 1
	assert_equal "$stderr" 'pg-cdc-tail: table "pg_class" is not in publication "pub" (use --create-slot to add it)'
}

@test "logical --snapshot: the slot's snapshot, then the stream; nothing lost or doubled at the boundary" {
	order-sim -d "dbname=$DB" -q --clients 2 --count 300 --rate 0 --delete-ratio 0.1 --seed 300
	order-sim -d "dbname=$DB" -q --clients 4 --duration 4 --rate 400 --delete-ratio 0.1 --seed 4000 3>&- &
	BG=$!
	sleep 0.5
	"${LOGICAL[@]}" --create-slot -t orders --snapshot -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	TAIL=$!
	wait $BG
	BG=
	wait_for 20 "[ \$(wc -l <'$WORK/out') -gt 0 ] && [ \"\$(confirmed)\" -ge \"\$(sql -c \"SELECT pg_current_wal_lsn() - '0/0'\")\" ]" ||
		wait_for 10 false || true
	sleep 1
	kill -TERM $TAIL
	wait $TAIL
	TAIL=
	grep -q '"op":"r"' "$WORK/out"
	# the last event of each key gives the source's state exactly
	sql -d "$DB" -c "CREATE TABLE ev (n serial, e jsonb)"
	sql -d "$DB" -c "\\copy ev (e) FROM '$WORK/out' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
	run sql -d "$DB" <<-'SQL'
		WITH last AS (SELECT DISTINCT ON (e->'key'->>'id') e FROM ev ORDER BY e->'key'->>'id', n DESC),
		     folded AS (SELECT (jsonb_populate_record(NULL::orders, e->'after')).* FROM last WHERE e->>'op' <> 'd')
		SELECT (SELECT count(*) FROM (SELECT * FROM orders EXCEPT SELECT * FROM folded) x),
		       (SELECT count(*) FROM (SELECT * FROM folded EXCEPT SELECT * FROM orders) x),
		       (SELECT count(*) FROM orders) > 300
	SQL
	assert_output "0|0|t"
	# the snapshot's rows come first, each once
	assert_equal "$(grep -c '"op":"r"' "$WORK/out")" "$(grep '"op":"r"' "$WORK/out" | sort -u | wc -l)"
	assert_equal "$(grep -n '"op":"r"' "$WORK/out" | tail -n 1 | cut -d: -f1)" "$(grep -c '"op":"r"' "$WORK/out")"
}

@test "logical -f: a change is emitted while following" {
	create_slot
	"${LOGICAL[@]}" -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	sleep 0.5
	insert_orders 1 live
	wait_for 5 "grep -q live '$WORK/out'"
	insert_orders 1 again
	wait_for 5 "grep -q again '$WORK/out'"
}

@test "logical: SIGTERM stops -f with status 0 and the position confirmed" {
	create_slot
	insert_orders 5
	"${LOGICAL[@]}" -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 10 "[ \$(wc -l <'$WORK/out') -eq 5 ]"
	kill -TERM $BG
	wait $BG
	BG=
	run tail_l
	assert_output ""
}

@test "logical: SIGTERM ends the stream with CopyDone: exit 0 at once, the slot confirmed at what was acknowledged" {
	create_slot
	insert_orders 3 one
	# every change of the first transaction lies below mid, the second's commit above
	local mid
	mid=$(sql -c "SELECT pg_current_wal_insert_lsn() - '0/0'")
	insert_orders 3 two
	"${LOGICAL[@]}" -f -v --ack="$WORK/ack" --ack-timeout=200 >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 10 "[ \$(wc -l <'$WORK/out') -eq 6 ]"
	local before acked
	before=$(confirmed)
	echo 3 >"$WORK/ack.tmp" && mv "$WORK/ack.tmp" "$WORK/ack"
	wait_for 10 "[ \"\$(confirmed)\" -gt $before ]"
	acked=$(confirmed)
	kill -TERM $BG
	# the last acknowledgement is waited for 200 ms, then the stream ends
	wait_for 3 "! kill -0 $BG 2>/dev/null"
	wait $BG
	BG=
	grep -qx "pg-cdc-tail: debug: the server ended the stream" "$WORK/err"
	! grep -q "did not end cleanly" "$WORK/err"
	# confirmed: the first transaction, acknowledged; never the second, which was not
	local final
	final=$(confirmed)
	[ "$final" -ge "$acked" ] && [ "$final" -le "$mid" ] ||
		fail "confirmed $final: acknowledged $acked, the second transaction begins above $mid
$(cat "$WORK/err")"
	assert_equal "$(sql -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND active")" 0
	run tail_l
	assert_equal "$(grep -c two <<<"$output")" 3
	assert_equal "${#lines[@]}" 3
}

@test "logical: kill -9 while draining a large backlog: a restart emits the rest, nothing missing" {
	create_slot
	insert_orders 30000
	"${LOGICAL[@]}" -f >"$WORK/1" 2>/dev/null 3>&- &
	BG=$!
	wait_for 20 "[ \$(wc -l <'$WORK/1') -gt 100 ]"
	kill -9 $BG
	wait $BG || true
	BG=
	tail_l >"$WORK/2"
	cat "$WORK/1" "$WORK/2" | grep -o '"id":"[0-9a-f-]*"' | sort -u >"$WORK/ids"
	assert_equal "$(wc -l <"$WORK/ids")" 30000
}

@test "logical --ack: the slot confirms only acknowledged transactions; kill -9 resends the rest" {
	create_slot
	insert_orders 3 one
	insert_orders 3 two
	"${LOGICAL[@]}" -f --ack="$WORK/ack" >"$WORK/1" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 10 "[ \$(wc -l <'$WORK/1') -eq 6 ]"
	local before
	before=$(confirmed)
	echo 3 >"$WORK/ack.tmp" && mv "$WORK/ack.tmp" "$WORK/ack"
	wait_for 10 "[ \"\$(confirmed)\" -gt $before ]"
	kill -9 $BG
	wait $BG || true
	BG=
	tail_l >"$WORK/2"
	assert_equal "$(wc -l <"$WORK/2")" 3
	assert_equal "$(grep -c two "$WORK/2")" 3
}

@test "logical --window bounds the unacknowledged lines" {
	create_slot
	insert_orders 50
	"${LOGICAL[@]}" -f --ack="$WORK/ack" --window=10 >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 10 "[ \$(wc -l <'$WORK/out') -eq 10 ]"
	sleep 0.5
	assert_equal "$(wc -l <"$WORK/out")" 10
	echo 10 >"$WORK/ack.tmp" && mv "$WORK/ack.tmp" "$WORK/ack"
	wait_for 10 "[ \$(wc -l <'$WORK/out') -eq 20 ]"
}

@test "logical without -f and with --ack: waits for the last acknowledgement; unacknowledged lines are an error and come again" {
	create_slot
	insert_orders 4
	run --separate-stderr tail_l --ack="$WORK/ack" --ack-timeout=300
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: downstream acknowledged 0 of 4 lines; the rest will be sent again"
	( sleep 0.5; echo 4 >"$WORK/ack.tmp"; mv "$WORK/ack.tmp" "$WORK/ack" ) 3>&- &
	run --separate-stderr tail_l --ack="$WORK/ack"
	assert_success
	assert_equal "${#lines[@]}" 4
	run tail_l
	assert_output ""
}

@test "logical -f reconnects after the server restarts and resumes from the slot" {
	create_slot
	insert_orders 2 first
	"${LOGICAL[@]}" -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 10 "[ \$(wc -l <'$WORK/out') -eq 2 ]"
	pg_restart
	insert_orders 2 after-restart
	wait_for 20 "[ \$(grep -c after-restart '$WORK/out') -eq 2 ]"
	grep -q "reconnecting" "$WORK/err"
	kill -TERM $BG
	wait $BG
	BG=
}

@test "logical: order-sim --clients 8 under a following tail: the same changes as the trigger log" {
	create_slot
	"${LOGICAL[@]}" -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	order-sim -d "dbname=$DB" -q --clients 8 --count 2000 --rate 0 --delete-ratio 0.1 --seed 8
	wait_for 30 "[ \$(wc -l <'$WORK/out') -ge \$(sql -d $DB -c 'SELECT count(*) FROM orders_cdc_log') ]"
	kill -TERM $BG
	wait $BG
	BG=
	# the trigger log holds every change once: the stream must hold the same ones
	sql -d "$DB" -c "SELECT op, key->>'id', coalesce(after->>'version', before->>'version')
		FROM orders_cdc_log ORDER BY 1, 2, 3" >"$WORK/log"
	sql -d "$DB" -c "CREATE TABLE ev (e jsonb)"
	sql -d "$DB" -c "\\copy ev FROM '$WORK/out' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
	sql -d "$DB" -c "SELECT e->>'op', e->'key'->>'id', coalesce(e->'after'->>'version', e->'before'->>'version')
		FROM ev ORDER BY 1, 2, 3" >"$WORK/stream"
	# deletes carry only the key under the default identity: compare them without version
	sed -i 's/^d|\([^|]*\)|.*/d|\1|/' "$WORK/log" "$WORK/stream"
	run diff "$WORK/log" "$WORK/stream"
	assert_success
}

@test "logical: a 1,000,000-row transaction streams with bounded memory" {
	sql -d "$DB" -c "CREATE TABLE big (id int PRIMARY KEY, v text)"
	create_slot big
	sql -d "$DB" -c "INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 1000000) g"
	# (an ASan build would keep 256 MiB of freed blocks in quarantine)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1 \
		command time -f %M -o "$WORK/rss" pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" \
		--publication=pub | wc -l >"$WORK/n"
	assert_equal "$(cat "$WORK/n")" 1000000
	# a whole transaction held in memory would be well over 100 MiB
	echo "peak RSS $(cat "$WORK/rss") KiB" >&3
	[ "$(cat "$WORK/rss")" -lt 65536 ]
}

@test "logical: an unchanged TOASTed value is named in \"unchanged\", never faked; FULL fills it" {
	sql -d "$DB" -c "CREATE TABLE doc (id int PRIMARY KEY, n int, body text)"
	create_slot doc
	sql -d "$DB" -c "INSERT INTO doc SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 4000) g"
	sql -d "$DB" -c "UPDATE doc SET n = 1"
	sql -d "$DB" -c "ALTER TABLE doc REPLICA IDENTITY FULL; UPDATE doc SET n = 2"
	tail_l >"$WORK/out"
	assert_equal "$(wc -l <"$WORK/out")" 3
	sed -n 2p "$WORK/out" | grep -Eq '"after":\{"id":1,"n":1\},"unchanged":\["body"\],"pos":'
	sed -n 3p "$WORK/out" | grep -q '"after":{"id":1,"n":2,"body":"[0-9a-f]*"},"pos":'
	assert_equal "$(sed -n 3p "$WORK/out" | sed 's/.*"after"://' | grep -o '"body":"[0-9a-f]*"' | wc -c)" $((128000 + 10))
}

@test "logical: an idle capture confirms the server's progress, so the slot does not hold WAL" {
	create_slot
	"${LOGICAL[@]}" -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	sleep 0.5
	local before
	before=$(confirmed)
	# WAL the publication has nothing in
	sql -d "$DB" -c "CREATE TABLE noise (v text); INSERT INTO noise SELECT repeat('x', 100) FROM generate_series(1, 20000)"
	local end
	end=$(sql -c "SELECT pg_current_wal_lsn() - '0/0'")
	wait_for 30 "[ \"\$(confirmed)\" -ge $end ]"
	[ "$(wc -l <"$WORK/out")" -eq 0 ]
}

@test "logical: status updates keep a stalled capture within wal_sender_timeout" {
	sql -c "ALTER SYSTEM SET wal_sender_timeout = '1s'" -c "SELECT pg_reload_conf()" >/dev/null
	create_slot
	insert_orders 20
	"${LOGICAL[@]}" -f --ack="$WORK/ack" --window=5 >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 10 "[ \$(wc -l <'$WORK/out') -eq 5 ]"
	sleep 3.5
	echo 5 >"$WORK/ack.tmp" && mv "$WORK/ack.tmp" "$WORK/ack"
	wait_for 10 "[ \$(wc -l <'$WORK/out') -eq 10 ]"
	sql -c "ALTER SYSTEM RESET wal_sender_timeout" -c "SELECT pg_reload_conf()" >/dev/null
	run cat "$WORK/err"
	assert_output ""
	refute grep -q "terminating walsender process due to replication timeout" "$PGTEST_DIR/server.log"
}

@test "logical | pg-upsert: a TOASTed column untouched by updates stays intact in the warehouse" {
	sql -d "$DB" -c "CREATE TABLE doc (id int PRIMARY KEY, n int, body text)"
	create_slot doc
	dropdb --if-exists "wh_$DB" 2>/dev/null
	createdb "wh_$DB"
	sql -d "wh_$DB" -c "CREATE TABLE doc (id int PRIMARY KEY, n int, body text, cdc_pos numeric(20,0), is_deleted boolean)"
	sql -d "$DB" -c "INSERT INTO doc SELECT g, 0, string_agg(md5(g::text || h::text), '') FROM generate_series(1, 3) g,
		generate_series(1, 4000) h GROUP BY g"
	sql -d "$DB" -c "UPDATE doc SET n = 1" -c "UPDATE doc SET n = 2 WHERE id = 1" -c "UPDATE doc SET body = 'short', n = 3 WHERE id = 2"
	# in one run (one batch) and then update by update (batches of one)
	tail_l >"$WORK/out"
	grep -q '"unchanged":\["body"\]' "$WORK/out"
	pg-upsert -d "wh_$DB" -t doc <"$WORK/out"
	sql -d "$DB" -c "UPDATE doc SET n = 4 WHERE id = 3"
	tail_l | pg-upsert -d "wh_$DB" -t doc --batch=1
	sql -d "$DB" -c "SELECT id, n, md5(body) FROM doc ORDER BY id" >"$WORK/source"
	sql -d "wh_$DB" -c "SELECT id, n, md5(body) FROM doc ORDER BY id" >"$WORK/warehouse"
	run diff "$WORK/source" "$WORK/warehouse"
	assert_success
	dropdb "wh_$DB"
}

# last JSON line of FILE with stage pg-cdc-tail: its member NAME
lfig() {
	grep '^{"stage":"pg-cdc-tail"' "$2" | tail -n 1 | jq -r ".$1"
}

@test "--stats in logical mode: a one-shot run reports the lines written, the last pos, nothing behind at the end" {
	create_slot
	insert_orders 5
	insert_orders 3
	run --separate-stderr tail_l -t orders --stats=1 --stats-file="$WORK/stats"
	assert_success
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >"$WORK/events"
	assert_equal "$(lfig lines_out "$WORK/stats")" 8
	assert_equal "$(lfig lines_acknowledged "$WORK/stats")" 8
	assert_equal "$(lfig pos "$WORK/stats")" "$(tail -n 1 "$WORK/events" | jq .pos)"
	assert_equal "$(lfig reconnects "$WORK/stats")" 0
	assert_equal "$(lfig seconds_behind "$WORK/stats")" 0
	assert_equal "$(lfig slot_bytes_behind "$WORK/stats")" 0
}

@test "--stats in logical mode: a tail held behind by its downstream reports the slot's bytes and seconds behind" {
	create_slot
	insert_orders 1
	insert_orders 1
	insert_orders 1
	sleep 1.2
	echo 0 >"$WORK/ack"
	tail_l -t orders -f --ack="$WORK/ack" --window=1 --stats=1 --stats-file="$WORK/stats" \
		>"$WORK/out" 2>"$WORK/err" &
	TAIL=$!
	wait_for 20 '[ "$(grep -c . "$WORK/stats" 2>/dev/null)" -ge 2 ]'
	assert_equal "$(lfig lines_out "$WORK/stats")" 1
	assert_equal "$(lfig lines_acknowledged "$WORK/stats")" 0
	jq -e '.slot_bytes_behind > 0 and .seconds_behind > 1 and .seconds_behind < 600' \
		<<<"$(tail -n 1 "$WORK/stats")"
	# acknowledged, one line at a time, the tail catches up: nothing behind
	wait_for 30 'wc -l <"$WORK/out" >"$WORK/ack.new" && mv "$WORK/ack.new" "$WORK/ack" &&
		[ "$(lfig lines_acknowledged "$WORK/stats")" = 3 ] &&
		[ "$(lfig slot_bytes_behind "$WORK/stats")" = 0 ] && [ "$(lfig seconds_behind "$WORK/stats")" = 0 ]'
	assert_equal "$(cat "$WORK/err")" ""
}

@test "logical mode under systemd: READY=1 once streaming, STATUS= with the slot, WATCHDOG=1; SIGUSR1 and --metrics report" {
	create_slot
	insert_orders 4
	socat -u UNIX-RECV:"$WORK/notify" - >"$WORK/heard" 2>/dev/null 3>&- &
	BG=$!
	wait_for 10 '[ -S "$WORK/notify" ]'
	# the tool itself in the background, not a shell running it: the signals are for it
	NOTIFY_SOCKET=$WORK/notify WATCHDOG_USEC=400000 "${LOGICAL[@]}" -t orders -f --metrics="$WORK/m.prom" \
		--metrics-label=pipeline=source >"$WORK/out" 2>"$WORK/err" 3>&- &
	TAIL=$!
	wait_for 10 'grep -q "^READY=1" "$WORK/heard"'
	wait_for 20 '[ "$(wc -l <"$WORK/out")" = 4 ]'
	wait_for 10 'grep -q "^STATUS=4 lines written, 4 acknowledged; 0 bytes behind (0.0 s)$" "$WORK/heard"' ||
		fail "heard: $(grep STATUS "$WORK/heard" | tail -n 3)"
	assert_equal "$(grep -m 1 '^STATUS=' "$WORK/heard")" "STATUS=streaming from slot $SLOT"
	local before
	before=$(grep -c '^WATCHDOG=1' "$WORK/heard")
	sleep 1
	[ "$(grep -c '^WATCHDOG=1' "$WORK/heard")" -ge $((before + 3)) ]
	# a line on demand, without --stats
	kill -USR1 "$TAIL"
	wait_for 10 'grep -q "^{\"stage\":\"pg-cdc-tail\"" "$WORK/err"'
	assert_equal "$(lfig lines_out "$WORK/err")" 4
	assert_equal "$(lfig pos "$WORK/err")" "$(tail -n 1 "$WORK/out" | jq .pos)"
	kill -TERM "$TAIL"
	wait "$TAIL"
	TAIL=
	wait_for 10 'grep -q "^STOPPING=1" "$WORK/heard"'
	run promtool check metrics <"$WORK/m.prom"
	assert_success
	grep -qx 'pgcdc_lines_out_total{stage="pg-cdc-tail",pipeline="source"} 4' "$WORK/m.prom"
	grep -qx 'pgcdc_slot_bytes_behind{stage="pg-cdc-tail",pipeline="source"} 0' "$WORK/m.prom"
	assert_equal "$(grep -v '^{"stage"' "$WORK/err")" ""
}
