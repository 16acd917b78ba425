#!/usr/bin/env bats
# pg-upsert's hard deletes with their guard kept in SCHEMA.cdc_tombstones,
# against a real PostgreSQL: the original project's warehouse table, which
# has no is_deleted (so deletes are hard by default) and whose users count
# its rows.  A delete or truncate must keep older changes, arriving later,
# from bringing rows back, whatever the batches and their order.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start pg
	# the original's warehouse table, with the guard column, and the tombstones
	createdb -T template0 wh_template
	sql -d wh_template <<-'SQL'
		CREATE SCHEMA analytics;
		CREATE TABLE analytics.fct_orders (
			order_id uuid PRIMARY KEY, user_id uuid, status text, amount_cents bigint,
			currency text, country text, created_at timestamptz, updated_at timestamptz,
			last_cdc_ts timestamptz, version bigint, extra jsonb,
			cdc_pos numeric(20,0) NOT NULL);
		CREATE TABLE analytics.cdc_tombstones (tbl text NOT NULL, key jsonb NOT NULL,
			pos numeric(20,0) NOT NULL, deleted_at timestamptz, PRIMARY KEY (tbl, key));
		CREATE TABLE analytics.lines (order_id uuid, line_no int, sku text, qty int,
			cdc_pos numeric(20,0) NOT NULL, PRIMARY KEY (order_id, line_no));
		-- the same table in a schema without tombstones
		CREATE SCHEMA bare;
		CREATE TABLE bare.fct_orders (LIKE analytics.fct_orders INCLUDING ALL);
	SQL
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	load lib/upsert
	new_warehouse_db
	WORK=$BATS_TEST_TMPDIR
}

# ev OP N POS [STATUS]: an event of order N, as trigger capture writes it for
# a source table with the original's columns; op k is a delete whose old row
# is the key alone (logical capture's default replica identity).  The status
# defaults to "sPOS", so the rows say which change they hold.
ev() {
	local id row before=null after=null
	id=$(uuid "$2")
	row="{\"order_id\":\"$id\",\"user_id\":\"$(uuid 999)\",\"status\":\"${4:-s$3}\",\"amount_cents\":$3,"
	row="$row\"currency\":\"EUR\",\"country\":\"DE\",\"created_at\":\"2025-11-26T09:00:00Z\","
	row="$row\"updated_at\":\"2025-11-26T09:00:00Z\",\"version\":1}"
	case $1 in
	d) before=$row ;;
	k) before="{\"order_id\":\"$id\"}" ;;
	*) after=$row ;;
	esac
	printf '{"op":"%s","table":"public.orders","key":{"order_id":"%s"},"before":%s,"after":%s,"pos":%s,"txid":7,"ts_ms":%s}\n' \
		"${1/k/d}" "$id" "$before" "$after" "$3" "$((1764150000000 + $3))"
}

# truncate POS
truncate_event() {
	printf '{"op":"t","table":"public.orders","key":null,"before":null,"after":null,"pos":%s,"txid":99,"ts_ms":%s}\n' \
		"$1" "$((1764150000000 + $1))"
}

# rows: every row as N:status:cdc_pos, in key order, on one line
rows() {
	sql -d "$WH" -c "SELECT string_agg(right(order_id::text, 2) || ':' || status || ':' || cdc_pos, ' '
		ORDER BY order_id) FROM ${1:-analytics.fct_orders}"
}

# tombs: the tombstones of analytics.fct_orders as N:pos, the table's as table:pos
tombs() {
	sql -d "$WH" -c "SELECT string_agg(coalesce(right(key ->> 'order_id', 2), 'table') || ':' || pos, ' '
		ORDER BY key ->> 'order_id' NULLS FIRST) FROM analytics.cdc_tombstones
		WHERE tbl = 'analytics.fct_orders'"
}

# both tables whole, with each row version's xmin, to tell that nothing was written
snapshot() {
	sql -d "$WH" -c "SELECT xmin, * FROM analytics.fct_orders ORDER BY order_id" \
		-c "SELECT xmin, * FROM analytics.cdc_tombstones ORDER BY tbl, key"
}

# ------------------------------------------------------------------ deletes

@test "without --delete and without is_deleted, a delete removes the row and keeps a tombstone" {
	{ ev c 1 10; ev c 2 11; } | upsert
	run --separate-stderr upsert <<<"$(ev d 1 30)"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(rows)" "02:s11:11"
	assert_equal "$(tombs)" "01:30"
	assert_equal "$(sql -d "$WH" -c "SELECT key, deleted_at FROM analytics.cdc_tombstones")" \
		"{\"order_id\": \"$(uuid 1)\"}|2025-11-26 09:40:00.03+00"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 1
}

@test "a delete then an older insert or update in a later batch does not bring the row back" {
	{ ev c 1 10; ev c 2 11; } | upsert
	ev d 1 30 | upsert
	ev k 2 31 | upsert
	# older changes of both keys, replayed or reordered, each in its own batch
	{ ev c 1 10; ev u 1 20; ev c 2 11; ev u 2 25; } | upsert --batch=1
	assert_equal "$(rows)" ""
	assert_equal "$(tombs)" "01:30 02:31"
	# a key the table never held: its delete comes first
	ev d 3 50 | upsert
	ev c 3 40 | upsert
	assert_equal "$(rows)" ""
	assert_equal "$(tombs)" "01:30 02:31 03:50"
	# an older delete never lowers a tombstone
	ev d 3 45 | upsert
	assert_equal "$(tombs)" "01:30 02:31 03:50"
}

@test "a newer insert brings the key back and removes its tombstone" {
	ev c 1 10 | upsert
	ev d 1 30 | upsert
	ev c 1 40 | upsert
	assert_equal "$(rows)" "01:s40:40"
	assert_equal "$(tombs)" ""
	# an older delete arriving now neither removes the row nor leaves a tombstone
	ev d 1 35 | upsert
	assert_equal "$(rows)" "01:s40:40"
	assert_equal "$(tombs)" ""
}

@test "a delete and older changes of its key in one batch, in any order, leave no row" {
	local order
	for order in "c u d" "c d u" "u c d" "u d c" "d c u" "d u c"; do
		dropdb "$WH" && createdb -T wh_template "$WH"
		local op
		for op in $order; do
			case $op in
			c) ev c 1 10 ;;
			u) ev u 1 20 ;;
			d) ev k 1 30 ;;
			esac
		done >"$WORK/in"
		# and a key whose insert is newer than its delete
		{ ev c 2 25; ev d 2 15; } >>"$WORK/in"
		run --separate-stderr upsert <"$WORK/in"
		assert_success
		assert_equal "$stderr" ""
		assert_equal "$(rows)" "02:s25:25"
		assert_equal "$(tombs)" "01:30"
	done
}

@test "a change naming unchanged columns does not bring a deleted key back" {
	ev c 1 10 | upsert
	ev d 1 30 | upsert
	printf '{"op":"u","key":{"order_id":"%s"},"after":{"order_id":"%s","status":"late"},"unchanged":["country"],"pos":20}\n' \
		"$(uuid 1)" "$(uuid 1)" | upsert
	assert_equal "$(rows)" ""
	assert_equal "$(tombs)" "01:30"
}

# ---------------------------------------------------------------- truncates

@test "a truncate keeps older changes from coming back, newer ones come back" {
	{ ev c 1 10; ev c 2 20; ev c 3 40; ev d 4 15; } | upsert
	assert_equal "$(tombs)" "04:15"
	truncate_event 30 | upsert
	assert_equal "$(rows)" "03:s40:40"
	# the table's tombstone covers the keys' older ones
	assert_equal "$(tombs)" "table:30"
	assert_equal "$(sql -d "$WH" -c "SELECT deleted_at FROM analytics.cdc_tombstones WHERE key = 'null'")" \
		"2025-11-26 09:40:00.03+00"
	# older changes, in later batches, one by one or together
	{ ev u 1 25; ev c 2 20; ev c 4 5; } | upsert --batch=1
	{ ev u 1 25; ev c 2 20; ev c 4 5; } | upsert
	assert_equal "$(rows)" "03:s40:40"
	# an older delete leaves no tombstone: the truncate's covers it
	ev d 5 28 | upsert
	assert_equal "$(tombs)" "table:30"
	# newer ones come back
	{ ev u 1 50; ev c 4 51; } | upsert
	assert_equal "$(rows)" "01:s50:50 03:s40:40 04:s51:51"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 3
	# an older truncate never lowers the table's tombstone
	truncate_event 20 | upsert
	assert_equal "$(tombs)" "table:30"
	assert_equal "$(rows)" "01:s50:50 03:s40:40 04:s51:51"
}

@test "a truncate in a batch with older and newer changes, wherever it is" {
	local at
	{ ev c 1 10; ev c 2 40; ev u 1 15; ev d 3 20; ev c 4 35; } >"$WORK/changes"
	for at in 1 3 6; do
		dropdb "$WH" && createdb -T wh_template "$WH"
		{ head -n $((at - 1)) "$WORK/changes"; truncate_event 30; tail -n +"$at" "$WORK/changes"; } >"$WORK/in"
		run --separate-stderr upsert <"$WORK/in"
		assert_success
		assert_equal "$stderr" ""
		assert_equal "$(rows)" "02:s40:40 04:s35:35"
		assert_equal "$(tombs)" "table:30"
	done
}

@test "the same truncate applied again changes nothing" {
	{ ev c 1 10; ev c 2 40; ev d 3 45; } | upsert
	truncate_event 30 | upsert
	snapshot >"$WORK/first"
	truncate_event 30 | upsert
	{ truncate_event 30; truncate_event 30; } | upsert
	snapshot >"$WORK/again"
	run diff "$WORK/first" "$WORK/again"
	assert_success
	assert_equal "$(rows)" "02:s40:40"
	assert_equal "$(tombs)" "table:30 03:45"
}

# ------------------------------------------------------------ whole streams

# A stream of 13 keys in commit order: inserts, updates, deletes with the old
# row or the key alone, a truncate, then keys inserted again and deleted.
# Live at the end: 1, 2, 3, 4 and 13; tombstones: 5, 6, 8 and the table's.
stream() {
	local n pos=0
	for n in $(seq 1 12); do ev c "$n" $((pos += 1)); done
	for n in 2 4 6 8 10 12; do ev u "$n" $((pos += 1)); done
	for n in 3 6 9 12; do ev d "$n" $((pos += 1)); done
	ev k 4 $((pos += 1))
	truncate_event $((pos += 1))
	for n in 1 2 3 4 5 6; do ev c "$n" $((pos += 1)); done
	ev u 2 $((pos += 1))
	ev d 5 $((pos += 1))
	ev k 6 $((pos += 1))
	ev c 13 $((pos += 1))
	ev d 8 $((pos += 1))
	ev u 13 $((pos += 1))
}

expected_rows="01:s25:25 02:s31:31 03:s27:27 04:s28:28 13:s36:36"
expected_tombs="table:24 05:32 06:33 08:35"

# apply FILE [OPTION]...: apply FILE into a fresh warehouse, check the end state
apply_fresh() {
	local in=$1
	shift
	dropdb "$WH" && createdb -T wh_template "$WH"
	run --separate-stderr upsert "$@" <"$in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(rows)" "$expected_rows"
	assert_equal "$(tombs)" "$expected_tombs"
	# the original's question: how many orders there are
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 5
}

@test "a stream applied twice changes nothing the second time" {
	stream >"$WORK/stream"
	local batch
	for batch in 1 3 5000; do
		apply_fresh "$WORK/stream" --batch="$batch"
		snapshot >"$WORK/first"
		upsert --batch="$batch" <"$WORK/stream"
		snapshot >"$WORK/again"
		run diff "$WORK/first" "$WORK/again"
		assert_success
	done
}

@test "a stream applied in reverse order of its batches, or of its lines, gives the same table" {
	stream >"$WORK/stream"
	# batches of 3 lines, the last first
	split -l 3 -d -a 3 "$WORK/stream" "$WORK/part."
	cat $(ls "$WORK"/part.* | sort -r) >"$WORK/reversed"
	apply_fresh "$WORK/reversed" --batch=3
	# every line in its own batch, the last first
	tac "$WORK/stream" >"$WORK/tac"
	apply_fresh "$WORK/tac" --batch=1
	# all in one batch, the last first
	apply_fresh "$WORK/tac"
	# applied again in order on top of the reversed one
	upsert --batch=2 <"$WORK/stream"
	assert_equal "$(rows)" "$expected_rows"
	assert_equal "$(tombs)" "$expected_tombs"
}

# -------------------------------------------------------------- key changes

# move NEW OLD POS: the insert of a key change from OLD, country unchanged
move() {
	printf '{"op":"c","key":{"order_id":"%s"},"old_key":{"order_id":"%s"},"before":null,"after":{"order_id":"%s","status":"moved"},"unchanged":["country"],"pos":%s}\n' \
		"$(uuid "$1")" "$(uuid "$2")" "$(uuid "$1")" "$3"
}

@test "a key change with old_key under hard delete: the new key takes the old row's values, the old key stays deleted" {
	{ ev c 1 10; ev k 1 20; move 2 1 20; } >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(sql -d "$WH" -c "SELECT right(order_id::text, 2), status, country, cdc_pos FROM analytics.fct_orders")" \
		"02|moved|DE|20"
	assert_equal "$(tombs)" "01:20"
	# the old key's older insert, replayed, does not come back
	ev c 1 10 | upsert
	assert_equal "$(rows)" "02:moved:20"
	# the new key deleted: the stream applied again, line by line, changes
	# nothing and dead-letters nothing, though the old key has no row now
	ev d 2 30 | upsert
	run --separate-stderr upsert --batch=1 --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(rows)" ""
	assert_equal "$(tombs)" "01:20 02:30"
}

# ------------------------------------------------------------ composite key

# line OP N LINE POS [QTY]: an event of line LINE of order N
line() {
	local key row before=null after=null
	key="{\"order_id\":\"$(uuid "$2")\",\"line_no\":$3}"
	row="{\"order_id\":\"$(uuid "$2")\",\"line_no\":$3,\"sku\":\"sku$3\",\"qty\":${5:-1}}"
	if [ "$1" = d ]; then before=$key; else after=$row; fi
	printf '{"op":"%s","table":"public.lines","key":%s,"before":%s,"after":%s,"pos":%s}\n' \
		"$1" "$key" "$before" "$after" "$4"
}

@test "a composite key: each key's tombstone holds every key column, apart from other tables" {
	{ line c 1 1 10; line c 1 2 11; line c 2 1 12; } | pg-upsert -d "$WH" -t analytics.lines
	line d 1 1 20 | pg-upsert -d "$WH" -t analytics.lines
	ev d 1 5 | upsert
	# older changes of the deleted line, in later batches and in one batch with others
	line u 1 1 15 7 | pg-upsert -d "$WH" -t analytics.lines
	{ line u 1 1 16 8; line u 1 2 21 9; } | pg-upsert -d "$WH" -t analytics.lines
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(right(order_id::text, 2) || '/' || line_no || ':' || qty, ' '
		ORDER BY order_id, line_no) FROM analytics.lines")" "01/2:9 02/1:1"
	assert_equal "$(sql -d "$WH" -c "SELECT tbl, key::text, pos FROM analytics.cdc_tombstones ORDER BY tbl")" \
		"analytics.fct_orders|{\"order_id\": \"$(uuid 1)\"}|5
analytics.lines|{\"line_no\": 1, \"order_id\": \"$(uuid 1)\"}|20"
	# a truncate of one table leaves the other's rows and tombstones
	printf '{"op":"t","table":"public.lines","key":null,"before":null,"after":null,"pos":30}\n' |
		pg-upsert -d "$WH" -t analytics.lines
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.lines")" 0
	assert_equal "$(sql -d "$WH" -c "SELECT tbl, key::text, pos FROM analytics.cdc_tombstones ORDER BY tbl")" \
		"analytics.fct_orders|{\"order_id\": \"$(uuid 1)\"}|5
analytics.lines|null|30"
	ev c 1 3 | upsert
	assert_equal "$(rows)" ""
}

# ------------------------------------------------------------ hostile names

@test "hostile schema, table and key names are quoted in the tombstone statements, not executed" {
	sql -d "$WH" <<-'SQL'
		CREATE TABLE victim (id int);
		CREATE SCHEMA "s'; DROP TABLE victim; --";
		CREATE TABLE "s'; DROP TABLE victim; --".cdc_tombstones (LIKE analytics.cdc_tombstones INCLUDING ALL);
		CREATE TABLE "s'; DROP TABLE victim; --"."x""; DROP TABLE victim; --" ("a'b" int, "Mixed Case" text,
			v text, cdc_pos numeric(20,0) NOT NULL, PRIMARY KEY ("a'b", "Mixed Case"));
	SQL
	local table="\"s'; DROP TABLE victim; --\".\"x\"\"; DROP TABLE victim; --\"" k='{"a'"'"'b":1,"Mixed Case":"M"}'
	printf '%s\n' "{\"op\":\"c\",\"key\":$k,\"after\":{\"a'b\":1,\"Mixed Case\":\"M\",\"v\":\"one\"},\"pos\":1}" \
		"{\"op\":\"d\",\"key\":$k,\"before\":$k,\"after\":null,\"pos\":2}" >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t "$table" --batch=1 <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT tbl, key::text, pos FROM \"s'; DROP TABLE victim; --\".cdc_tombstones")" \
		"s'; DROP TABLE victim; --.x\"; DROP TABLE victim; --|{\"a'b\": 1, \"Mixed Case\": \"M\"}|2"
	# again: the older insert does not come back
	pg-upsert -d "$WH" -t "$table" --batch=1 <"$WORK/in"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM $table")" 0
	printf '{"op":"t","key":null,"before":null,"after":null,"pos":3}\n' | pg-upsert -d "$WH" -t "$table"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM victim")" 0
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM $table")" 0
	assert_equal "$(sql -d "$WH" -c "SELECT tbl, key::text, pos FROM \"s'; DROP TABLE victim; --\".cdc_tombstones")" \
		"s'; DROP TABLE victim; --.x\"; DROP TABLE victim; --|null|3"
}

# ------------------------------------------------------- without the table

@test "hard deletes without the tombstone table: a warning at start, and today's behaviour" {
	local warning='pg-upsert: warning: hard deletes from "bare.fct_orders" keep no guard without table "bare.cdc_tombstones": a change older than a delete or truncate can bring its row back'
	run --separate-stderr pg-upsert -d "$WH" -t bare.fct_orders <<<"$(ev c 1 10)"
	assert_success
	assert_equal "$stderr" "$warning"
	# once, however many batches
	{ ev d 1 30; ev c 2 31; ev c 3 32; } >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t bare.fct_orders --batch=1 --delete=hard <"$WORK/in"
	assert_success
	assert_equal "$stderr" "$warning"
	assert_equal "$(rows bare.fct_orders)" "02:s31:31 03:s32:32"
	# nothing guards the deleted key
	ev c 1 10 | pg-upsert -q -d "$WH" -t bare.fct_orders
	assert_equal "$(rows bare.fct_orders)" "01:s10:10 02:s31:31 03:s32:32"
	# soft deletes, and hard ones with the table, say nothing
	run --separate-stderr upsert --delete=hard </dev/null
	assert_equal "$stderr" ""
	sql -d "$WH" -c "ALTER TABLE bare.fct_orders ADD is_deleted boolean NOT NULL DEFAULT false"
	run --separate-stderr pg-upsert -d "$WH" -t bare.fct_orders <<<"$(ev d 3 40)"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT right(order_id::text, 2), is_deleted FROM bare.fct_orders WHERE is_deleted")" "03|t"
}

@test "soft deletes stay the default with is_deleted and leave the tombstones alone" {
	sql -d "$WH" -c "ALTER TABLE analytics.fct_orders ADD is_deleted boolean NOT NULL DEFAULT false"
	{ ev c 1 10; ev d 1 20; } | upsert
	truncate_event 30 | upsert
	assert_equal "$(sql -d "$WH" -c "SELECT status, cdc_pos, is_deleted FROM analytics.fct_orders")" "s20|30|t"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.cdc_tombstones")" 0
}

@test "an unfit tombstone table is a one-line error before reading input" {
	sql -d "$WH" -c "ALTER TABLE analytics.cdc_tombstones ALTER pos TYPE bigint"
	run --separate-stderr upsert <<<"$(ev c 1 10)"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: table "analytics.cdc_tombstones" needs the columns tbl text, key jsonb, pos numeric and deleted_at timestamptz, and a unique index on (tbl, key)'
	sql -d "$WH" -c "ALTER TABLE analytics.cdc_tombstones ALTER pos TYPE numeric(20,0)" \
		-c "ALTER TABLE analytics.cdc_tombstones DROP CONSTRAINT cdc_tombstones_pkey"
	run --separate-stderr upsert <<<"$(ev c 1 10)"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: table "analytics.cdc_tombstones" needs the columns tbl text, key jsonb, pos numeric and deleted_at timestamptz, and a unique index on (tbl, key)'
	assert_equal "$(rows)" ""
	# soft deletes do not need it
	sql -d "$WH" -c "ALTER TABLE analytics.fct_orders ADD is_deleted boolean NOT NULL DEFAULT false"
	run --separate-stderr upsert <<<"$(ev c 1 10)"
	assert_success
	assert_equal "$stderr" ""
}
