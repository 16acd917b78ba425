#!/usr/bin/env bats
# pg-upsert's staged path, against a real PostgreSQL: the client converts
# each row into the table's columns and COPYs the batch into a temporary
# staging table.  What lands must be what the JSON path (json_populate_record)
# lands, and whatever the client cannot convert, or the database refuses,
# goes by the JSON path with its own messages.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	# every statement in the server log: which path a batch took
	pg_start log_statement=all
	make_warehouse_template
	sql -d wh_template -c "CREATE TYPE mood AS ENUM ('sad', 'ok')"
	sql -d wh_template -c "CREATE TABLE kinds (id int PRIMARY KEY, t text, v varchar(8), i bigint,
		n numeric, b boolean, ts timestamptz, u uuid, j json, jb jsonb, m mood, rg int4range,
		tn text, tb text, cdc_pos numeric(20,0), is_deleted boolean)"
	sql -d wh_template -c "CREATE TABLE arr (id int PRIMARY KEY, a int[], cdc_pos numeric(20,0), is_deleted boolean)"
}

teardown_file() {
	load lib/common
	pg_destroy
}

setup() {
	load lib/common
	load lib/upsert
	new_warehouse_db
	WORK=$BATS_TEST_TMPDIR
	# the server log from here on is this test's
	sql -c "SELECT 'pgcdc test $BATS_TEST_NUMBER starts'" >/dev/null
}

# copies: how many COPY into a staging table the server saw in this test
copies() {
	sed -n "/pgcdc test $BATS_TEST_NUMBER starts/,\$p" "$PGTEST_DIR/server.log" | grep -c 'statement: .*COPY pg_temp.pgcdc_stage_' || true
}

# stagings: how many times a staging table was to be made (and filled) in this test
stagings() {
	sed -n "/pgcdc test $BATS_TEST_NUMBER starts/,\$p" "$PGTEST_DIR/server.log" | grep -c 'statement: CREATE TEMP TABLE IF NOT EXISTS pg_temp.pgcdc_stage_' || true
}

# kinds_event POS AFTER: a change of table kinds
kinds_event() {
	printf '{"op":"u","table":"public.kinds","key":{"id":%s},"before":null,"after":%s,"pos":%s,"ts_ms":1764150000123}\n' \
		"$(printf '%s' "$2" | sed 's/^{"id":\([0-9]*\).*/\1/')" "$2" "$1"
}

@test "each column type takes a staged value as json_populate_record reads it" {
	local rows=(
		'{"id":1,"t":"a\tb\nc\\d\"e\u00e9\ud83d\ude00 \\N","v":"short","i":9007199254740993,"n":1.50e3,"b":true,"ts":"2026-01-02T03:04:05.678+01:00","u":"00000000-0000-4000-8000-000000000001","j":"str\\n","jb":{"a":[1,{"b":null}]},"m":"ok","rg":"[1,5)","tn":42.0,"tb":false}'
		'{"id":2,"j":12.5,"jb":"x","t":null,"unknown":{"x":1}}'
		'{"id":3,"t":"","b":"t","j":{"k":"v\t"},"jb":[1,2],"tn":"\\.","i":-7,"n":-0.5e-3}'
		'{"id":4,"t":"first","t":"last\r","tb":"\u0009"}'
	)
	local i=0 row want got
	for row in "${rows[@]}"; do
		i=$((i + 1))
		kinds_event "$((i * 10))" "$row"
	done >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t public.kinds --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(copies)" 1
	i=0
	for row in "${rows[@]}"; do
		i=$((i + 1))
		want=$(sql -d "$WH" -v row="$row" <<<"SELECT to_jsonb(json_populate_record(NULL::kinds, :'row'::json)) - 'cdc_pos' - 'is_deleted'")
		got=$(sql -d "$WH" -c "SELECT to_jsonb(k) - 'cdc_pos' - 'is_deleted' FROM kinds AS k WHERE id = $i")
		assert_equal "$got" "$want"
	done
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(cdc_pos || ':' || is_deleted, ' ' ORDER BY id) FROM kinds")" \
		"10:false 20:false 30:false 40:false"
}

@test "a table the client cannot convert for (an array column) is applied by the JSON path" {
	printf '{"op":"c","table":"public.arr","key":{"id":1},"before":null,"after":{"id":1,"a":[1,2]},"pos":5}\n' >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t public.arr <"$WORK/in"
	assert_success
	assert_equal "$(sql -d "$WH" -c "SELECT a FROM arr WHERE id = 1")" "{1,2}"
	assert_equal "$(copies)" 0
}

@test "a string holding \\u0000 goes by the JSON path and is dead-lettered with its message alone" {
	{
		kinds_event 10 '{"id":1,"t":"one"}'
		kinds_event 20 '{"id":2,"t":"nul\u0000"}'
		kinds_event 30 '{"id":3,"t":"three"}'
	} >"$WORK/in"
	want=$(sql -d "$WH" -v row='{"id":2,"t":"nul\u0000"}' <<<"SELECT json_populate_record(NULL::kinds, :'row'::json)" 2>&1 | sed -n 's/.*ERROR: *//p' | head -n 1)
	run --separate-stderr pg-upsert -d "$WH" -t public.kinds --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(id || ':' || t, ' ' ORDER BY id) FROM kinds")" "1:one 3:three"
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter "$want" 2 "$(sed -n 2p "$WORK/in")")"
}

@test "a bad value in a staged batch: that row alone is dead-lettered, with the JSON path's message" {
	{
		order c 1 10 one
		printf '{"op":"c","table":"public.orders","key":{"id":"%s"},"before":null,"after":{"id":"%s","status":"two","amount_cents":"x"},"pos":20}\n' "$(uuid 2)" "$(uuid 2)"
		order c 3 30 three
	} >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter 'invalid input syntax for type bigint: "x"' 2 "$(sed -n 2p "$WORK/in")")"
	assert_equal "$(state 1)" "one|100|10|f"
	assert_equal "$(state 3)" "three|100|30|f"
	# the staged attempt was made, and refused
	assert_equal "$(copies)" 1
}

@test "without the right to make temporary tables, batches go by the JSON path" {
	sql -c "DROP ROLE IF EXISTS notemp; CREATE ROLE notemp LOGIN"
	sql -d "$WH" -c "REVOKE TEMPORARY ON DATABASE $WH FROM PUBLIC;
		GRANT USAGE ON SCHEMA analytics TO notemp; GRANT ALL ON ALL TABLES IN SCHEMA analytics TO notemp"
	{
		order c 1 10 one
		order c 2 20 two
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "dbname=$WH user=notemp" -t analytics.fct_orders --batch=1 <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(state 1)" "one|100|10|f"
	assert_equal "$(state 2)" "two|100|20|f"
	# refused once, never tried again
	assert_equal "$(stagings)" 1
	sql -d "$WH" -c "REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM notemp; REVOKE USAGE ON SCHEMA analytics FROM notemp"
	sql -c "DROP ROLE notemp"
}

@test "a staged ts_ms lands in last_cdc_ts as the JSON path lands it, at any magnitude; those out of range are dead-lettered" {
	sql -d "$WH" -c "CREATE TABLE stamps (id int PRIMARY KEY, cdc_pos numeric(20,0), is_deleted boolean, last_cdc_ts timestamptz)"
	local ts=(1764150000123 0 -1 1764150000999 -62135596800001 9007199254740991 9007199254740993 -9007199254740993
		9223372036854 99999999999999999999) i=0 t
	for t in "${ts[@]}"; do
		i=$((i + 1))
		printf '{"op":"c","table":"public.stamps","key":{"id":%d},"before":null,"after":{"id":%d},"pos":%d,"ts_ms":%s}\n' \
			"$i" "$i" "$((i * 10))" "$t"
	done >"$WORK/in"
	# out of the range of timestamps: before 4713 BC, and past bigint
	low=$(sql -d "$WH" <<<"SELECT to_timestamp(-9007199254740993::numeric / 1000)" 2>&1 | sed -n 's/.*ERROR: *//p' | head -n 1)
	high=$(sql -d "$WH" <<<"SELECT to_timestamp(99999999999999999999::numeric / 1000)" 2>&1 | sed -n 's/.*ERROR: *//p' | head -n 1)
	run --separate-stderr pg-upsert -d "$WH" -t public.stamps --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter "$low" 8 "$(sed -n 8p "$WORK/in")")
$(dead_letter "$high" 10 "$(sed -n 10p "$WORK/in")")"
	i=0
	for t in "${ts[@]:0:9}"; do
		i=$((i + 1))
		[ "$i" -eq 8 ] && continue
		assert_equal "$(sql -d "$WH" -c "SELECT last_cdc_ts = to_timestamp($t::numeric / 1000) FROM stamps WHERE id = $i")" "t"
	done
	# the staged attempt was made
	[ "$(copies)" -ge 1 ]
}
