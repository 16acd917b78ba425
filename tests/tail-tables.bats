#!/usr/bin/env bats
# pg-cdc-tail follows a whole database: no -t (every captured table, or every
# table of the publication), -t patterns, and tables enabled or published
# while it follows, against a real PostgreSQL.

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
	WORK=$(mktemp -d)
}

teardown() {
	[ -n "${BG:-}" ] && kill -9 $BG 2>/dev/null
	[ -n "${W1:-}" ] && kill $W1 2>/dev/null
	[ -n "${W2:-}" ] && kill $W2 2>/dev/null
	drop_slot "$SLOT"
	rm -rf "$WORK"
}

# table m with 500 rows, and the procedure w(seconds): a writer that commits an
# update (v + 1) of a random old row, an insert of a new key and now and then
# a delete of a new key, again and again; no key ever comes back
writers_table() {
	sql -d "$DB" <<-'SQL'
		CREATE TABLE m (id bigint PRIMARY KEY, v int NOT NULL);
		INSERT INTO m SELECT g, 1 FROM generate_series(1, 500) g;
		CREATE SEQUENCE m_ids START 1000;
		CREATE PROCEDURE w(secs float) LANGUAGE plpgsql AS $$
		DECLARE
			t0 timestamptz := clock_timestamp();
		BEGIN
			WHILE clock_timestamp() < t0 + secs * interval '1 second' LOOP
				UPDATE m SET v = v + 1 WHERE id = 1 + floor(random() * 500)::int;
				INSERT INTO m VALUES (nextval('m_ids'), 1);
				IF random() < 0.2 THEN
					DELETE FROM m WHERE id = (SELECT max(id) FROM m WHERE id >= 1000);
				END IF;
				COMMIT;
			END LOOP;
		END
		$$;
	SQL
}

start_writers() {
	sql -d "$DB" -c "CALL w($1)" 3>&- &
	W1=$!
	sql -d "$DB" -c "CALL w($1)" 3>&- &
	W2=$!
}

wait_writers() {
	wait $W1
	wait $W2
	W1= W2=
}

# the tail's events of m, in order, each key's values: "r 1 2 3" or "c 1 2 d"
per_key() {
	jq -r 'select(.table == "public.m" and .op != "s") | "\(.key.id) \(.op) \(.after.v // "-")"' "$1"
}

# every key's events are one r or c first (any op with "any" as $2), then v + 1
# each update, at most one d last: nothing lost, nothing twice
check_sequences() {
	per_key "$1" | awk -v any="${2:-}" '
		{
			k = $1
			if (!(k in seen)) {
				seen[k] = 1
				if (any == "" && $2 != "r" && $2 != "c") { print "first " $0; bad = 1 }
				if ($2 == "d") gone[k] = 1
				last[k] = $3
				next
			}
			if (gone[k]) { print "after d: " $0; bad = 1 }
			if ($2 == "d") { gone[k] = 1; next }
			if ($2 != "u" || $3 != last[k] + 1) { print "step: " $0 " after " last[k]; bad = 1 }
			last[k] = $3
		}
		END { exit bad }'
}

# the source table m equals the last event of each of its keys
check_folded() {
	sql -d "$DB" -c "CREATE TABLE ev (n serial, e jsonb)"
	sql -d "$DB" -c "\\copy ev (e) FROM '$1' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
	run sql -d "$DB" <<-'SQL'
		WITH last AS (SELECT DISTINCT ON (e->'key'->>'id') e FROM ev
		               WHERE e->>'table' = 'public.m' AND e->>'op' <> 's'
		               ORDER BY e->'key'->>'id', n DESC),
		     folded AS (SELECT (jsonb_populate_record(NULL::m, e->'after')).* FROM last WHERE e->>'op' <> 'd')
		SELECT (SELECT count(*) FROM (SELECT * FROM m EXCEPT SELECT * FROM folded) x),
		       (SELECT count(*) FROM (SELECT * FROM folded EXCEPT SELECT * FROM m) x),
		       (SELECT count(*) FROM m) > 500
	SQL
	assert_output "0|0|t"
}

@test "trigger: without -t every captured table is followed, and a table enabled while following comes at once" {
	sql -d "$DB" -c "CREATE TABLE late (id text PRIMARY KEY, n int)"
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'o', 1, 'EUR', 'DE')"
	pg-cdc-tail -d "$DB" -f --poll=600000 >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 5 'test "$(wc -l <"$WORK/out")" = 1'
	sql -d "$DB" -c "SELECT cdc.enable('late')" >/dev/null
	sql -d "$DB" -c "INSERT INTO late VALUES ('a', 1), ('b', 2)"
	# the poll interval is 10 minutes: cdc.enable's notification wakes it
	wait_for 5 'test "$(grep -c "public.late" "$WORK/out")" = 2'
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(jq -r '"\(.op) \(.table)"' "$WORK/out" | paste -sd ,)" \
		"c public.orders,c public.late,c public.late"
	assert_equal "$(cat "$WORK/err")" 'pg-cdc-tail: following table "public.late"'
}

@test "trigger: a table enabled mid-stream under concurrent writers: every change after the enable, once" {
	writers_table
	pg-cdc-tail -d "$DB" -f --poll=200 --schema-events >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	start_writers 3
	sleep 1
	sql -d "$DB" -c "SELECT cdc.enable('m')" >/dev/null
	wait_writers
	sql -d "$DB" -c "INSERT INTO m VALUES (-1, 1)"
	wait_for 20 "grep -q '\"key\":{\"id\":-1}' '$WORK/out'"
	kill -TERM $BG
	wait $BG
	BG=
	# exactly the log's changes, each once (in commit order, not log order)
	jq -r 'select(.table == "public.m" and .op != "s") | .pos' "$WORK/out" | sort -n >"$WORK/emitted"
	sql -d "$DB" -c "SELECT id FROM m_cdc_log WHERE op <> 's' ORDER BY id" >"$WORK/logged"
	run diff -q "$WORK/emitted" "$WORK/logged"
	assert_success
	assert_equal "$(uniq "$WORK/emitted" | wc -l)" "$(wc -l <"$WORK/emitted")"
	run check_sequences "$WORK/out" any
	assert_success
	[ "$(grep -c '"table":"public.m"' "$WORK/out")" -gt 100 ]
	# the schema event first
	assert_equal "$(grep '"table":"public.m"' "$WORK/out" | head -n 1 | jq -c '[.op, .primary_key]')" '["s",["id"]]'
}

@test "trigger --snapshot: a table enabled mid-stream under concurrent writers gets its rows, then its changes: nothing lost or doubled" {
	writers_table
	pg-cdc-tail -d "$DB" -f --poll=200 --snapshot >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	start_writers 4
	sleep 1
	sql -d "$DB" -c "SELECT cdc.enable('m')" >/dev/null
	wait_writers
	sql -d "$DB" -c "INSERT INTO m VALUES (-1, 1)"
	wait_for 20 "grep -q '\"key\":{\"id\":-1}' '$WORK/out'"
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(grep -c '"op":"r","table":"public.m"' "$WORK/out")" \
		"$(grep '"op":"r","table":"public.m"' "$WORK/out" | sort -u | wc -l)"
	[ "$(grep -c '"op":"r","table":"public.m"' "$WORK/out")" -ge 500 ]
	[ "$(grep -c '"op":"u","table":"public.m"' "$WORK/out")" -gt 50 ]
	run check_sequences "$WORK/out"
	assert_success
	check_folded "$WORK/out"
}

@test "trigger: -t takes shell patterns on schema.table; following, a table enabled later that matches comes too" {
	sql -d "$DB" <<-'SQL' >/dev/null
		CREATE SCHEMA s2;
		CREATE TABLE a1 (id int PRIMARY KEY); CREATE TABLE a2 (id int PRIMARY KEY);
		CREATE TABLE b1 (id int PRIMARY KEY); CREATE TABLE s2.a1 (id int PRIMARY KEY);
		CREATE TABLE a3 (id int PRIMARY KEY); CREATE TABLE b2 (id int PRIMARY KEY);
		SELECT cdc.enable(t) FROM unnest('{a1,a2,b1,s2.a1}'::regclass[]) t;
		INSERT INTO a1 VALUES (1); INSERT INTO a2 VALUES (1); INSERT INTO b1 VALUES (1);
		INSERT INTO s2.a1 VALUES (1);
	SQL
	run --separate-stderr pg-cdc-tail -d "$DB" -t 'public.a*' -n one
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r .table | paste -sd ' ')" "public.a1 public.a2"
	# a name and a pattern together; a pattern matching nothing is no error
	run --separate-stderr pg-cdc-tail -d "$DB" -t b1 -t '*.a[1-9]' -t 'nothing.*' -n two
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r .table | sort | paste -sd ' ')" "public.a1 public.a2 public.b1 s2.a1"
	pg-cdc-tail -d "$DB" -t 'public.a?' -n one -f --poll=200 >"$WORK/out" 2>/dev/null 3>&- &
	BG=$!
	sql -d "$DB" -c "SELECT cdc.enable('b2'); SELECT cdc.enable('a3')" >/dev/null
	sql -d "$DB" -c "INSERT INTO b2 VALUES (7); INSERT INTO a3 VALUES (7); INSERT INTO a1 VALUES (7)"
	wait_for 5 'test "$(wc -l <"$WORK/out")" = 2'
	sleep 0.5
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(jq -r '"\(.table) \(.key.id)"' "$WORK/out" | sort | paste -sd ,)" "public.a1 7,public.a3 7"
}

@test "logical: a table added to the publication while following flows, keyed by its primary key; -t patterns filter" {
	sql -d "$DB" -c "CREATE TABLE other (id int PRIMARY KEY)"
	pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --publication=pub --create-slot -t orders >/dev/null
	pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --publication=pub -t 'public.n*' -t orders \
		--schema-events -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	sleep 0.5
	sql -d "$DB" <<-'SQL'
		CREATE TABLE n1 (k text, j int, v text, PRIMARY KEY (j, k));
		ALTER TABLE n1 REPLICA IDENTITY FULL;
		ALTER PUBLICATION pub ADD TABLE n1, other;
		INSERT INTO n1 VALUES ('a', 1, 'x');
		INSERT INTO other VALUES (1);
		UPDATE n1 SET v = 'y';
	SQL
	wait_for 10 'test "$(grep -c public.n1 "$WORK/out")" = 3'
	sleep 0.5
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(jq -r .op "$WORK/out" | paste -sd ' ')" "s c u"
	assert_equal "$(jq -c 'select(.op != "s") | .key' "$WORK/out" | sort -u)" '{"j":1,"k":"a"}'
	assert_equal "$(head -n 1 "$WORK/out" | jq -c '[.table, .primary_key]')" '["public.n1",["j","k"]]'
	refute grep -q public.other "$WORK/out"
}

@test "logical: without -t every table of the publication flows, also one added while following" {
	pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --publication=pub --create-slot -t orders >/dev/null
	pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --publication=pub -f >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	sleep 0.5
	# under REPLICA IDENTITY FULL the identity is the whole row: the key is still the primary key
	sql -d "$DB" -c "CREATE TABLE n2 (id bigint PRIMARY KEY, v text)" \
		-c "ALTER TABLE n2 REPLICA IDENTITY FULL" -c "ALTER PUBLICATION pub ADD TABLE n2" \
		-c "INSERT INTO n2 VALUES (5, 'a')"
	wait_for 10 'grep -q public.n2 "$WORK/out"'
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(jq -c '[.op, .table, .key]' "$WORK/out")" '["c","public.n2",{"id":5}]'
	assert_equal "$(cat "$WORK/err")" 'pg-cdc-tail: table "public.n2" joined the publication'
}
