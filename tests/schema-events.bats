#!/usr/bin/env bats
# pg-cdc-tail --schema-events: the "s" event of a table's columns and key, in
# both capture modes, against a real PostgreSQL.

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
	drop_slot "$SLOT"
	rm -rf "$WORK"
}

# the four kinds of key: uuid, bigint, text, composite
keyed_tables() {
	sql -d "$DB" <<-'SQL'
		CREATE TABLE ku (id uuid PRIMARY KEY, note varchar(20));
		CREATE TABLE kb (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, at timestamptz);
		CREATE TABLE kt (code text PRIMARY KEY, n int);
		CREATE TABLE kc (tenant int, region char(2), seq bigint NOT NULL, v jsonb,
			PRIMARY KEY (region, tenant));
	SQL
}

keyed_rows() {
	sql -d "$DB" <<-'SQL'
		INSERT INTO ku VALUES ('7d3e2b1a-0000-4000-8000-000000000001', 'a');
		INSERT INTO kb VALUES (9223372036854775807, 12.50, '2026-01-01 00:00:00+00');
		INSERT INTO kt VALUES ('x-1', 1);
		INSERT INTO kc VALUES (7, 'de', 1, '{"a": 1}');
	SQL
}

# the schema events of a file, without pos/txid/ts_ms, one per line
schemas() {
	jq -c 'select(.op == "s") | del(.pos, .txid, .ts_ms)' "$1"
}

S_KU='{"op":"s","table":"public.ku","key":null,"before":null,"after":null,"columns":[{"name":"id","type":"uuid","not_null":true},{"name":"note","type":"character varying(20)","not_null":false}],"primary_key":["id"]}'
S_KB='{"op":"s","table":"public.kb","key":null,"before":null,"after":null,"columns":[{"name":"id","type":"bigint","not_null":true},{"name":"amount","type":"numeric(12,2)","not_null":true},{"name":"at","type":"timestamp with time zone","not_null":false}],"primary_key":["id"]}'
S_KT='{"op":"s","table":"public.kt","key":null,"before":null,"after":null,"columns":[{"name":"code","type":"text","not_null":true},{"name":"n","type":"integer","not_null":false}],"primary_key":["code"]}'
S_KC='{"op":"s","table":"public.kc","key":null,"before":null,"after":null,"columns":[{"name":"tenant","type":"integer","not_null":true},{"name":"region","type":"character(2)","not_null":true},{"name":"seq","type":"bigint","not_null":true},{"name":"v","type":"jsonb","not_null":false}],"primary_key":["region","tenant"]}'

# every "s" line directly precedes a change of its table and carries its pos, txid and ts_ms
check_placement() {
	jq -se '. as $a | [range(0; length) | select($a[.].op == "s")] | all(. as $i |
		($a[$i + 1] // {}) as $n | ($n.op // "") != "s" and ($n.op // "") != "" and
		$n.table == $a[$i].table and $n.pos == $a[$i].pos and $n.txid == $a[$i].txid and
		$n.ts_ms == $a[$i].ts_ms)' "$1" >/dev/null
}

@test "trigger: the first change of each table comes after its schema event, exact for uuid, bigint, text and composite keys" {
	keyed_tables
	sql -d "$DB" -c "SELECT cdc.enable(t) FROM unnest('{ku,kb,kt,kc}'::regclass[]) t" >/dev/null
	keyed_rows
	sql -d "$DB" -c "INSERT INTO kt VALUES ('x-2', 2)"
	run --separate-stderr pg-cdc-tail -d "$DB" -t ku -t kb -t kt -t kc --schema-events
	assert_success
	printf '%s\n' "${lines[@]}" >"$WORK/out"
	assert_equal "$(schemas "$WORK/out")" "$(printf '%s\n' "$S_KU" "$S_KB" "$S_KT" "$S_KC")"
	check_placement "$WORK/out"
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s c s c s c c s c"
	assert_equal "$(sed -n 2p "$WORK/out" | jq -c .key)" '{"id":"7d3e2b1a-0000-4000-8000-000000000001"}'
	assert_equal "$(sed -n 9p "$WORK/out" | jq -c .key)" '{"region":"de","tenant":7}'
}

@test "trigger: ADD COLUMN, ALTER TYPE and DROP COLUMN each put a new schema event right before the first change after them" {
	keyed_tables
	sql -d "$DB" -c "SELECT cdc.enable('ku')" >/dev/null
	sql -d "$DB" <<-'SQL'
		INSERT INTO ku VALUES ('7d3e2b1a-0000-4000-8000-000000000001', 'a');
		ALTER TABLE ku ADD COLUMN qty numeric(10,2) NOT NULL DEFAULT 0;
		INSERT INTO ku VALUES ('7d3e2b1a-0000-4000-8000-000000000002', 'b', 2.5);
		UPDATE ku SET qty = 1 WHERE note = 'a';
		ALTER TABLE ku ALTER COLUMN note TYPE text;
		UPDATE ku SET note = 'c' WHERE note = 'b';
		ALTER TABLE ku DROP COLUMN qty;
		DELETE FROM ku WHERE note = 'a';
	SQL
	pg-cdc-tail -d "$DB" -t ku --schema-events >"$WORK/out"
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s c s c u s u s d"
	check_placement "$WORK/out"
	run jq -c 'select(.op == "s") | [.columns[] | [.name, .type, .not_null]]' "$WORK/out"
	assert_output "$(cat <<-'EOF'
		[["id","uuid",true],["note","character varying(20)",false]]
		[["id","uuid",true],["note","character varying(20)",false],["qty","numeric(10,2)",true]]
		[["id","uuid",true],["note","text",false],["qty","numeric(10,2)",true]]
		[["id","uuid",true],["note","text",false]]
	EOF
	)"
	assert_equal "$(jq -c 'select(.op == "s") | .primary_key' "$WORK/out" | sort -u)" '["id"]'
}

@test "trigger: a later run starts with the schema its first change was written with, not the catalog's now" {
	sql -d "$DB" -c "CREATE TABLE t1 (id int PRIMARY KEY, a text); SELECT cdc.enable('t1');
		INSERT INTO t1 VALUES (1, 'x')" >/dev/null
	pg-cdc-tail -d "$DB" -t t1 >/dev/null
	sql -d "$DB" -c "INSERT INTO t1 VALUES (2, 'y')" -c "ALTER TABLE t1 ADD COLUMN b int" \
		-c "INSERT INTO t1 VALUES (3, 'z', 3)"
	pg-cdc-tail -d "$DB" -t t1 --schema-events >"$WORK/out"
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s c s c"
	assert_equal "$(jq -c 'select(.op == "s") | [.columns[].name]' "$WORK/out" | paste -sd ' ')" \
		'["id","a"] ["id","a","b"]'
	# and a run that starts after the ALTER reads the last schema row before its position
	sql -d "$DB" -c "INSERT INTO t1 VALUES (4, 'w', 4)"
	pg-cdc-tail -d "$DB" -t t1 --schema-events >"$WORK/out2"
	assert_equal "$(jq -c 'select(.op == "s") | [.columns[].name]' "$WORK/out2")" '["id","a","b"]'
	assert_equal "$(wc -l <"$WORK/out2")" 2
}

@test "trigger: without the event trigger, a row whose columns differ makes the catalog be read again" {
	sql -d "$DB" -c "DROP EVENT TRIGGER cdc_schema_changed"
	sql -d "$DB" -c "CREATE TABLE t2 (id bigint PRIMARY KEY); SELECT cdc.enable('t2');
		INSERT INTO t2 VALUES (1); ALTER TABLE t2 ADD COLUMN c text; INSERT INTO t2 VALUES (2, 'c');
		INSERT INTO t2 VALUES (3, 'd')" >/dev/null
	pg-cdc-tail -d "$DB" -t t2 --schema-events >"$WORK/out"
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s c s c c"
	assert_equal "$(jq -c 'select(.op == "s") | [.columns[].name]' "$WORK/out" | paste -sd ' ')" \
		'["id"] ["id","c"]'
	check_placement "$WORK/out"
}

@test "trigger: without --schema-events no s event, and the log's schema rows never become events" {
	sql -d "$DB" -c "CREATE TABLE t3 (id int PRIMARY KEY); SELECT cdc.enable('t3');
		INSERT INTO t3 VALUES (1); ALTER TABLE t3 ADD COLUMN c text; INSERT INTO t3 VALUES (2, 'c')" >/dev/null
	run --separate-stderr pg-cdc-tail -d "$DB" -t t3
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r .op | paste -sd ' ')" "c c"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r .pos | paste -sd ' ')" "1 3"
}

@test "trigger: a schema event is a line of the ack window, counted and acknowledged" {
	sql -d "$DB" -c "CREATE TABLE t4 (id int PRIMARY KEY); SELECT cdc.enable('t4');
		INSERT INTO t4 VALUES (1), (2)" >/dev/null
	run --separate-stderr pg-cdc-tail -d "$DB" -t t4 --schema-events --ack="$WORK/ack" --ack-timeout=300
	assert_failure 1
	assert_equal "${#lines[@]}" 3
	assert_equal "$stderr" "pg-cdc-tail: downstream acknowledged 0 of 3 lines; the rest will be sent again"
	( sleep 0.5; echo 3 >"$WORK/ack.new"; mv "$WORK/ack.new" "$WORK/ack" ) &
	run --separate-stderr pg-cdc-tail -d "$DB" -t t4 --schema-events --ack="$WORK/ack"
	assert_success
	assert_equal "${#lines[@]}" 3
	assert_equal "$(sql -d "$DB" -c "SELECT snap_hi IS NULL FROM cdc.consumer")" t
}

@test "trigger --snapshot: the schema event comes before the first r row, with pos 0" {
	keyed_tables
	keyed_rows
	sql -d "$DB" -c "SELECT cdc.enable('kc')" >/dev/null
	pg-cdc-tail -d "$DB" -t kc --snapshot --schema-events >"$WORK/out"
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s r"
	assert_equal "$(schemas "$WORK/out")" "$S_KC"
	assert_equal "$(head -n 1 "$WORK/out" | jq -c '[.pos, .txid]')" '[0,null]'
	check_placement "$WORK/out"
}

@test "logical: the first change of each table comes after its schema event, exact for uuid, bigint, text and composite keys" {
	keyed_tables
	"${LOGICAL[@]}" --create-slot -t ku -t kb -t kt -t kc >/dev/null
	keyed_rows
	run --separate-stderr "${LOGICAL[@]}" --schema-events
	assert_success
	printf '%s\n' "${lines[@]}" >"$WORK/out"
	assert_equal "$(schemas "$WORK/out")" "$(printf '%s\n' "$S_KU" "$S_KB" "$S_KT" "$S_KC")"
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s c s c s c s c"
	check_placement "$WORK/out"
	assert_equal "$(sed -n 8p "$WORK/out" | jq -c .key)" '{"region":"de","tenant":7}'
}

@test "logical: ADD COLUMN, ALTER TYPE and DROP COLUMN each put a new schema event right before the first change after them" {
	keyed_tables
	"${LOGICAL[@]}" --create-slot -t ku >/dev/null
	sql -d "$DB" <<-'SQL'
		INSERT INTO ku VALUES ('7d3e2b1a-0000-4000-8000-000000000001', 'a');
		ALTER TABLE ku ADD COLUMN qty numeric(10,2) NOT NULL DEFAULT 0;
		INSERT INTO ku VALUES ('7d3e2b1a-0000-4000-8000-000000000002', 'b', 2.5);
		UPDATE ku SET qty = 1 WHERE note = 'a';
		ALTER TABLE ku ALTER COLUMN note TYPE text;
		UPDATE ku SET note = 'c' WHERE note = 'b';
		ALTER TABLE ku DROP COLUMN qty;
		DELETE FROM ku WHERE note = 'a';
	SQL
	"${LOGICAL[@]}" --schema-events >"$WORK/out"
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s c s c u s u s d"
	check_placement "$WORK/out"
	run jq -c 'select(.op == "s") | [.columns[] | [.name, .type]]' "$WORK/out"
	assert_output "$(cat <<-'EOF'
		[["id","uuid"],["note","character varying(20)"]]
		[["id","uuid"],["note","character varying(20)"],["qty","numeric(10,2)"]]
		[["id","uuid"],["note","text"],["qty","numeric(10,2)"]]
		[["id","uuid"],["note","text"]]
	EOF
	)"
	assert_equal "$(jq -c 'select(.op == "s") | .primary_key' "$WORK/out" | sort -u)" '["id"]'
}

@test "logical: the primary key is pg_index's, not the replica identity's" {
	sql -d "$DB" -c "CREATE TABLE ri (a int, b int NOT NULL, PRIMARY KEY (a));
		CREATE UNIQUE INDEX ri_b ON ri (b); ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_b"
	"${LOGICAL[@]}" --create-slot -t ri >/dev/null
	sql -d "$DB" -c "INSERT INTO ri VALUES (1, 2)"
	"${LOGICAL[@]}" --schema-events >"$WORK/out"
	assert_equal "$(jq -c 'select(.op == "s") | .primary_key' "$WORK/out")" '["a"]'
}

@test "logical --snapshot: the schema event comes before the first r row, and the stream does not repeat it" {
	keyed_tables
	keyed_rows
	"${LOGICAL[@]}" --create-slot -t kt --snapshot --schema-events -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 10 'test "$(wc -l <"$WORK/out")" -ge 2'
	sql -d "$DB" -c "INSERT INTO kt VALUES ('x-2', 2)"
	wait_for 10 'test "$(wc -l <"$WORK/out")" -ge 3'
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s r c"
	assert_equal "$(schemas "$WORK/out")" "$S_KT"
	assert_equal "$(head -n 1 "$WORK/out" | jq -c '[.pos, .txid]')" '[0,null]'
}

@test "trigger: with the event trigger installed, a user who may not read cdc.captured can still ALTER a table" {
	sql -d "$DB" -c "CREATE ROLE plain_$BATS_TEST_NUMBER LOGIN" -c "GRANT CREATE ON SCHEMA public TO plain_$BATS_TEST_NUMBER"
	run --separate-stderr sql -d "$DB" -U "plain_$BATS_TEST_NUMBER" -c "CREATE TABLE mine (id int)" \
		-c "ALTER TABLE mine ADD COLUMN x int"
	assert_success
	# running cdc.sql again keeps one event trigger
	sql -d "$DB" -f "$TOP/sql/cdc.sql" >/dev/null 2>&1
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'cdc_schema_changed'")" 1
}
