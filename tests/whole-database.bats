#!/usr/bin/env bats
# A whole database through one cdc-source and one cdc-sink, in each capture
# mode: twenty tables with uuid, bigint, composite and text keys written by
# concurrent clients, a table added mid-stream, a column added and one
# dropped mid-stream, and a table with no mapping.  The warehouse starts
# with an empty schema: pg-upsert creates and evolves its tables from the
# schema events.  Afterwards every warehouse table equals its source (SQL
# EXCEPT ALL, both ways).

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start pg kafka
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
	DB=src_$BATS_TEST_NUMBER
	WH=wh_$BATS_TEST_NUMBER
	PREFIX=db_$BATS_TEST_NUMBER
	SLOT=whole_$BATS_TEST_NUMBER
	STARTED=()
	dropdb --if-exists "$DB" 2>/dev/null
	dropdb --if-exists "$WH" 2>/dev/null
	createdb -T template0 "$DB"
	createdb -T template0 "$WH"
	sql -d "$WH" -c "CREATE SCHEMA analytics; CREATE SCHEMA cmp"
}

teardown() {
	stop_started
	drop_slot "$SLOT"
	rm -rf "$WORK"
}

# source_schema MODE: the twenty tables and the audit table, captured.
source_schema() {
	[ "$1" = logical ] || sql -d "$DB" -f "$TOP/sql/cdc.sql" >/dev/null
	sql -d "$DB" -f "$TOP/tests/lib/many-tables.sql" >/dev/null
	sql -d "$DB" -c "CREATE SCHEMA audit;
		CREATE TABLE audit.log (id bigint PRIMARY KEY, msg text)" >/dev/null
	if [ "$1" = logical ]; then
		sql -d "$DB" -c "CREATE PUBLICATION whole FOR TABLE audit.log,
			$(sql -d "$DB" -c "SELECT string_agg('public.' || tbl, ', ') FROM work_tables")"
	else
		sql -d "$DB" -c "SELECT cdc.enable(('public.' || tbl)::regclass) FROM work_tables;
			SELECT cdc.enable('audit.log')" >/dev/null
	fi
}

# env_files MODE: the two halves for the whole database.  The source follows
# the tables of two patterns into a topic per table; the sink reads the
# topics by pattern and maps public.* onto analytics.*, creating and evolving
# the tables; audit.log has no mapping.
env_files() {
	local tail_opts=--poll=200
	[ "$1" = trigger ] ||
		tail_opts="--mode=logical --slot=$SLOT --publication=whole --create-slot"
	cat >"$WORK/source.env" <<-EOF
		CDC_SOURCE="host=$PGHOST port=$PGPORT user=postgres dbname=$DB"
		CDC_TABLE=public.* audit.*
		CDC_TOPIC_PREFIX=$PREFIX
		KAFKA_BROKERS=$KAFKA_BROKERS
		CDC_STATE_DIR=$STATE
		CDC_TAIL_OPTS=$tail_opts
	EOF
	cat >"$WORK/sink.env" <<-EOF
		CDC_WAREHOUSE="host=$PGHOST port=$PGPORT user=postgres dbname=$WH"
		CDC_MAP=public.*=analytics.*
		CDC_TOPIC=^$PREFIX\\..*
		CDC_GROUP=sink_$BATS_TEST_NUMBER
		KAFKA_BROKERS=$KAFKA_BROKERS
		CDC_STATE_DIR=$STATE
		CDC_UPSERT_OPTS=--create --evolve
	EOF
}

start_halves() {
	env -i PATH="$PATH" cdc-source -e "$WORK/source.env" </dev/null >/dev/null \
		2>>"$WORK/source.err" 3>&- &
	STARTED+=($!)
	env -i PATH="$PATH" cdc-sink -e "$WORK/sink.env" </dev/null >/dev/null \
		2>>"$WORK/sink.err" 3>&- &
	STARTED+=($!)
}

# writers SECONDS: four concurrent clients changing random tables.
writers() {
	printf '\\set n random(1, 20)\nSELECT work(:n);\n' >"$WORK/work.sql"
	pgbench -n -c 4 -j 2 -T "$1" -f "$WORK/work.sql" "$DB" >"$WORK/pgbench.log" 2>&1
}

# The tables to compare: the twenty and the one added mid-stream.
tables() {
	sql -d "$DB" -c "SELECT tbl FROM work_tables UNION ALL SELECT 't21' ORDER BY 1"
}

# columns T: the source table's columns, in order, quoted
columns() {
	sql -d "$DB" -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'public.$1'::regclass AND attnum > 0
		AND NOT attisdropped"
}

# digest DB SCHEMA T COLS: one hash of the table's rows, in a fixed order
digest() {
	sql -d "$1" -c "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '')
		FROM (SELECT $4 FROM $2.$3) AS x" 2>/dev/null
}

converged() {
	local t cols
	for t in $(tables); do
		cols=$(columns "$t")
		[ "$(digest "$DB" public "$t" "$cols")" = "$(digest "$WH" analytics "$t" "$cols")" ] || return 1
	done
}

# except_both_ways T: rows of the source table missing from the warehouse
# table plus rows of the warehouse table not in the source (over the source's
# columns), counted after copying the source rows into the warehouse.
except_both_ways() {
	local cols
	cols=$(columns "$1")
	sql -d "$WH" -c "CREATE TABLE cmp.$1 AS SELECT $cols FROM analytics.$1 WITH NO DATA"
	sql -d "$DB" -c "COPY (SELECT $cols FROM public.$1) TO STDOUT" |
		sql -d "$WH" -c "COPY cmp.$1 FROM STDIN"
	sql -d "$WH" -c "SELECT (SELECT count(*) FROM (SELECT $cols FROM analytics.$1
			EXCEPT ALL SELECT * FROM cmp.$1) AS a)
		+ (SELECT count(*) FROM (SELECT * FROM cmp.$1
			EXCEPT ALL SELECT $cols FROM analytics.$1) AS b)"
}

whole_database() {
	local mode=$1 t
	source_schema "$mode"
	env_files "$mode"
	start_halves
	if [ "$mode" = logical ]; then
		wait_for 30 "[ \"\$(sql -c \"SELECT count(*) FROM pg_replication_slots
			WHERE slot_name = '$SLOT'\")\" = 1 ]"
	fi
	writers 8 &
	local w=$!
	sleep 2
	# mid-stream: a column added and used, a column dropped, a table added,
	# and rows of the table no mapping covers
	sql -d "$DB" -c "ALTER TABLE u03 ADD COLUMN label text"
	sql -d "$DB" -c "UPDATE u03 SET label = 'L' || v WHERE v % 2 = 0"
	sql -d "$DB" -c "SELECT fill_spare()" >/dev/null
	sql -d "$DB" -c "ALTER TABLE b07 DROP COLUMN spare"
	sql -d "$DB" -c "CREATE TABLE public.t21 (id bigint PRIMARY KEY, name text NOT NULL, born date)"
	if [ "$mode" = logical ]; then
		sql -d "$DB" -c "ALTER PUBLICATION whole ADD TABLE public.t21"
	else
		sql -d "$DB" -c "SELECT cdc.enable('public.t21')" >/dev/null
	fi
	sql -d "$DB" -c "INSERT INTO t21 SELECT g, 'n' || g, date '2026-01-01' + g FROM generate_series(1, 300) g"
	sql -d "$DB" -c "INSERT INTO audit.log SELECT g, 'm' || g FROM generate_series(1, 50) g"
	wait "$w"
	run cat "$WORK/pgbench.log"
	assert_output --partial "number of failed transactions: 0"
	sql -d "$DB" -c "UPDATE u03 SET label = 'M' || v WHERE v % 3 = 0; DELETE FROM t21 WHERE id % 10 = 0"

	wait_for 180 converged || {
		cat "$WORK/source.err" "$WORK/sink.err" >&2
		for t in $(tables); do
			echo "$t: $(digest "$DB" public "$t" "$(columns "$t")") $(digest "$WH" analytics "$t" "$(columns "$t")")" >&2
		done
		return 1
	}
	for t in $(tables); do
		run except_both_ways "$t"
		assert_output "0"
	done
	# the added column came over; the dropped one stays, nullable
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.u03 WHERE label IS NOT NULL")" \
		"$(sql -d "$DB" -c "SELECT count(*) FROM u03 WHERE label IS NOT NULL")"
	assert_equal "$(sql -d "$WH" -c "SELECT attnotnull FROM pg_attribute
		WHERE attrelid = 'analytics.b07'::regclass AND attname = 'spare'")" f
	# the table with no mapping is nowhere in the warehouse, and every one of
	# its changes is a dead letter of the sink
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM pg_class WHERE relname = 'log'")" 0
	assert_equal "$(jq -r '.line // empty' "$STATE"/sink-*dead-letters.ndjson |
		jq -c 'select(.table == "audit.log" and .op == "c")' | wc -l)" 50
	# nothing else was refused
	assert_equal "$(jq -r '.line // empty' "$STATE"/sink-*dead-letters.ndjson |
		jq -c 'select(.table != "audit.log")' | wc -l)" 0
}

@test "trigger mode: twenty tables, a table enabled, a column added and one dropped mid-stream: the warehouse equals the source" {
	whole_database trigger
}

@test "logical mode: twenty tables, a table added to the publication, a column added and one dropped mid-stream: the warehouse equals the source" {
	whole_database logical
}
