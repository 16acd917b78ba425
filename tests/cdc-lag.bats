#!/usr/bin/env bats
# The cdc.lag view of sql/cdc.sql: how far behind each trigger-mode consumer is.

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
	[ -n "${PSQL_A:-}" ] && kill $PSQL_A 2>/dev/null
	rm -rf "$WORK"
}

# insert_orders N: N new orders in one transaction
insert_orders() {
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		SELECT gen_random_uuid(), gen_random_uuid(), 'created', g, 'EUR', 'DE'
		FROM generate_series(1, $1) g"
}

# consumer c's row of cdc.lag for orders: changes|oldest is null|behind > 0
lag_row() {
	sql -d "$DB" -c "SELECT changes, oldest IS NULL, behind > interval '0' FROM cdc.lag
		WHERE consumer = 'c' AND tbl = 'orders'::regclass"
}

@test "cdc.lag shows the changes a consumer has not read yet and the oldest one's age" {
	insert_orders 3
	pg-cdc-tail -d "$DB" -t orders -n c >/dev/null
	insert_orders 2
	insert_orders 2
	assert_equal "$(lag_row)" "4|f|t"
	assert_equal "$(sql -d "$DB" -c "SELECT oldest = (SELECT ts FROM orders_cdc_log WHERE id = 4)
		FROM cdc.lag WHERE consumer = 'c'")" t
}

@test "cdc.lag shows zero changes and no oldest once the consumer has caught up" {
	insert_orders 3
	pg-cdc-tail -d "$DB" -t orders -n c >/dev/null
	assert_equal "$(sql -d "$DB" -c "SELECT changes, oldest IS NULL, behind FROM cdc.lag
		WHERE consumer = 'c'")" "0|t|00:00:00"
}

@test "cdc.lag has one row per consumer and table" {
	sql -d "$DB" -c "CREATE TABLE k (id int PRIMARY KEY); SELECT cdc.enable('k')" >/dev/null
	insert_orders 2
	sql -d "$DB" -c "INSERT INTO k VALUES (1)"
	pg-cdc-tail -d "$DB" -n c >/dev/null
	pg-cdc-tail -d "$DB" -t k -n d >/dev/null
	sql -d "$DB" -c "INSERT INTO k VALUES (2), (3)"
	run sql -d "$DB" -c "SELECT consumer, tbl, changes FROM cdc.lag ORDER BY consumer, tbl::text"
	assert_success
	assert_output "c|k|2
c|orders|0
d|k|2"
}

@test "cdc.lag counts a transaction that took its log ids early and commits late" {
	mkfifo "$WORK/a"
	psql -X -q -d "$DB" <"$WORK/a" >"$WORK/a.out" 2>&1 3>&- &
	PSQL_A=$!
	exec 4>"$WORK/a"
	# A takes log id 1 and stays open; B takes id 2, commits and is read
	echo "BEGIN; INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
	      VALUES (gen_random_uuid(), gen_random_uuid(), 'from-a', 1, 'EUR', 'DE');" >&4
	wait_for 10 '[ "$(sql -d "$DB" -c "SELECT count(*) FROM pg_stat_activity
		WHERE state = '"'idle in transaction'"' AND datname = '"'$DB'"'")" = 1 ]'
	insert_orders 1
	pg-cdc-tail -d "$DB" -t orders -n c >/dev/null
	assert_equal "$(lag_row)" "0|t|f"
	echo "COMMIT;" >&4
	exec 4>&-
	wait $PSQL_A
	PSQL_A=
	assert_equal "$(lag_row)" "1|f|t"
	assert_equal "$(sql -d "$DB" -c "SELECT oldest = (SELECT ts FROM orders_cdc_log WHERE id = 1)
		FROM cdc.lag WHERE consumer = 'c'")" t
}

@test "cdc.lag counts what is left of a batch read in part" {
	insert_orders 5
	pg-cdc-tail -d "$DB" -t orders -n c >/dev/null
	insert_orders 4
	# the consumer read the new batch up to log id 7 of 9
	sql -d "$DB" -c "UPDATE cdc.consumer SET snap_hi = pg_current_snapshot(), last_id = 7
		WHERE name = 'c'"
	assert_equal "$(lag_row)" "2|f|t"
}

@test "cdc.lag does not count schema rows nor the querying transaction's own changes" {
	insert_orders 1
	pg-cdc-tail -d "$DB" -t orders -n c >/dev/null
	sql -d "$DB" -c "ALTER TABLE orders ADD COLUMN note text"
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log WHERE op = 's'")" 1
	run sql -d "$DB" -c "BEGIN; INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 1, 'EUR', 'DE');
		SELECT changes FROM cdc.lag WHERE consumer = 'c'; COMMIT"
	assert_output 0
	assert_equal "$(lag_row)" "1|f|t"
}

@test "cdc.lag stays cheap: it reads only the log from the consumer's position on" {
	insert_orders 2000
	pg-cdc-tail -d "$DB" -t orders -n c >/dev/null
	insert_orders 3
	sql -d "$DB" -c "ANALYZE orders_cdc_log"
	run sql -d "$DB" -c "SET enable_seqscan = off;
		SELECT changes FROM cdc.lag WHERE consumer = 'c'"
	assert_output 3
	# the plan of the function's query: an index scan on txid
	run sql -d "$DB" -c "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;
		SET auto_explain.log_nested_statements = on; SET client_min_messages = log;
		SET auto_explain.log_level = notice;
		SELECT changes FROM cdc.lag WHERE consumer = 'c'"
	assert_output --partial 'orders_cdc_log_txid'
}

@test "cdc.lag shows NULL changes for a consumer of a table no longer captured" {
	insert_orders 1
	pg-cdc-tail -d "$DB" -t orders -n c >/dev/null
	sql -d "$DB" -c "SELECT cdc.disable('orders')" >/dev/null
	assert_equal "$(sql -d "$DB" -c "SELECT changes IS NULL, oldest IS NULL, behind IS NULL
		FROM cdc.lag WHERE consumer = 'c'")" "t|t|t"
}

@test "sql/cdc.sql runs again over a database that has cdc.lag" {
	run sql -d "$DB" -f "$TOP/sql/cdc.sql"
	assert_success
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM cdc.lag")" 0
}
