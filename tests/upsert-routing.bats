#!/usr/bin/env bats
# pg-upsert with many tables, against a real PostgreSQL: each event applied
# to the warehouse table its "table" maps to (--map, -t), never to another;
# column renames; unmapped tables dead-lettered or skipped; schema events
# creating and evolving tables (--create, --evolve); a warehouse column
# dropped under a running pg-upsert.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start warehouse
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

teardown() {
	[ -n "${BG:-}" ] && kill -9 "$BG" 2>/dev/null
	exec 4>&-
	return 0
}

# ev OP TABLE KEY ROW POS: an event of TABLE; ROW is "after", or for d "before"
ev() {
	local before=null after=null
	if [ "$1" = d ]; then before=$4; else after=$4; fi
	printf '{"op":"%s","table":"%s","key":%s,"before":%s,"after":%s,"pos":%s,"txid":1,"ts_ms":1764150000123}\n' \
		"$1" "$2" "$3" "$before" "$after" "$5"
}

# schema_ev TABLE POS PK NAME:TYPE...: a schema event; PK as JSON strings ('"a","b"')
schema_ev() {
	local table=$1 pos=$2 pk=$3 cols="" sep="" c
	shift 3
	for c in "$@"; do
		cols="$cols$sep{\"name\":\"${c%%:*}\",\"type\":\"${c#*:}\",\"not_null\":false}"
		sep=,
	done
	printf '{"op":"s","table":"%s","key":null,"before":null,"after":null,"columns":[%s],"primary_key":[%s],"pos":%s,"txid":1,"ts_ms":1764150000123}\n' \
		"$table" "$cols" "$pk" "$pos"
}

# item OP ID POS NAME: an event of public.items (id bigint, name text)
item() {
	ev "$1" public.items "{\"id\":$2}" "{\"id\":$2,\"name\":\"$4\"}" "$3"
}

# customer OP N POS NAME: an event of public.customers, keyed by a uuid "id" as orders are
customer() {
	local id
	id=$(uuid "$2")
	ev "$1" public.customers "{\"id\":\"$id\"}" "{\"id\":\"$id\",\"name\":\"$4\",\"status\":\"vip\"}" "$3"
}

# rows TABLE COLS: the rows of TABLE, ordered by its first column, one per line
rows() {
	sql -d "$WH" -c "SELECT $2 FROM $1 ORDER BY 1"
}

# dead_reasons FILE: the "error" of each dead letter in FILE
dead_reasons() {
	sed 's/^{"error":"\(\([^"\\]\|\\.\)*\)".*/\1/' "$1"
}

# mart: tables for the many-table tests, made by hand
mart() {
	sql -d "$WH" -c "CREATE SCHEMA mart;
		CREATE TABLE mart.accounts (id bigint PRIMARY KEY, owner text, cdc_pos numeric(20,0) NOT NULL,
			is_deleted boolean NOT NULL DEFAULT false);
		CREATE TABLE mart.order_lines (order_id bigint, line int, sku text, qty int,
			cdc_pos numeric(20,0) NOT NULL, is_deleted boolean NOT NULL DEFAULT false,
			PRIMARY KEY (order_id, line));
		CREATE TABLE mart.countries (code text PRIMARY KEY, name text, cdc_pos numeric(20,0) NOT NULL,
			is_deleted boolean NOT NULL DEFAULT false);
		CREATE TABLE mart.dim_products (id bigint PRIMARY KEY, title text, price numeric(10,2),
			cdc_pos numeric(20,0) NOT NULL, is_deleted boolean NOT NULL DEFAULT false)"
}

# ------------------------------------------------------------ the issue's bug

@test "-t: events of another table on the stream are dead-lettered, never applied to the -t table" {
	{
		order c 1 10 new
		customer c 2 11 ann
		order u 1 12 paid
		customer u 2 13 bob
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 1
	assert_equal "$(state 1)" "paid|100|12|f"
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter 'no mapping for table public.customers' 2 "$(sed -n 2p "$WORK/in")")
$(dead_letter 'no mapping for table public.customers' 4 "$(sed -n 4p "$WORK/in")")"
}

@test "--map: customers events on the orders stream never land in fct_orders" {
	{
		order c 1 10 new
		customer c 2 11 ann
		order c 3 12 paid
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map public.orders=analytics.fct_orders --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(status, ' ' ORDER BY id) FROM analytics.fct_orders")" "new paid"
	assert_equal "$(dead_reasons "$WORK/dlq")" "no mapping for table public.customers"
}

@test "-t binds to the first source table seen, and says so under -v" {
	{
		order c 1 10 new
		customer c 2 11 ann
	} >"$WORK/in"
	run --separate-stderr pg-upsert -v -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	grep -qx 'pg-upsert: applying public.orders to analytics.fct_orders' <<<"$stderr"
	# the other way round: customers come first and take the table, orders are refused
	new_warehouse_db
	{
		customer c 2 11 ann
		order c 1 10 new
	} | pg-upsert -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq2"
	assert_equal "$(dead_reasons "$WORK/dlq2")" "no mapping for table public.orders"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders WHERE status = 'vip'")" 1
}

# ------------------------------------------------------------------ usage

@test "-t with --map, and malformed --map or --unmapped values, are usage errors" {
	local args want
	while IFS='|' read -r args want; do
		# shellcheck disable=SC2086
		run --separate-stderr pg-upsert -d "$WH" $args
		assert_failure 2
		assert_equal "$stderr" "pg-upsert: error: $want
Try \"pg-upsert --help\" for more information."
	done <<-'EOF'
		-t analytics.fct_orders --map=public.orders=analytics.fct_orders|-t and --map cannot be used together
		--map=public.orders|invalid value "public.orders" for option --map: expected SRC=DST
		--map=orders=analytics.fct_orders|invalid value "orders=analytics.fct_orders" for option --map: the source is schema.table, schema.* or *.*
		--map=public.ord*=analytics.x|invalid value "public.ord*=analytics.x" for option --map: the source is schema.table, schema.* or *.*
		--map=public.*=analytics.x|invalid value "public.*=analytics.x" for option --map: the target is schema.table, or schema.* for a source pattern
		--map=public.orders=analytics.*|invalid value "public.orders=analytics.*" for option --map: the target is schema.table, or schema.* for a source pattern
		--map=public.orders=fct|invalid value "public.orders=fct" for option --map: the target is schema.table, or schema.* for a source pattern
		--map=public.orders=a.b(id)|invalid value "public.orders=a.b(id)" for option --map: a column rename is COLUMN=COLUMN
		--map=public.orders=a.b(id=x,id=y)|invalid value "public.orders=a.b(id=x,id=y)" for option --map: a column is renamed twice
		--map=public.orders=a.b(id=x|invalid value "public.orders=a.b(id=x" for option --map: a column rename is COLUMN=COLUMN
		--map=public.a=a.b --map=public.a=a.c|table "public.a" is mapped twice (--map)
		--map=public.a=a.b --unmapped=drop|invalid value "drop" for option --unmapped (dlq or skip)
		--unmapped=skip|no table given (use -t TABLE or --map SRC=DST)
	EOF
}

# ------------------------------------------------------------ many tables

@test "five tables with uuid, bigint, composite and text keys through one pg-upsert, explicit and pattern maps" {
	mart
	local o1 o2
	o1=$(uuid 1)
	o2=$(uuid 2)
	{
		order c 1 100 new
		ev c public.accounts '{"id":9007199254740993}' '{"id":9007199254740993,"owner":"ann"}' 5
		ev c public.order_lines '{"order_id":1,"line":1}' '{"order_id":1,"line":1,"sku":"a","qty":1}' 6
		ev c public.order_lines '{"order_id":1,"line":2}' '{"order_id":1,"line":2,"sku":"b","qty":2}' 7
		ev c public.countries '{"code":"FR"}' '{"code":"FR","name":"France"}' 3
		ev c shop.products '{"id":1}' '{"id":1,"title":"pen","price":"1.50"}' 40
		order c 2 101 new
		ev u public.order_lines '{"order_id":1,"line":2}' '{"order_id":1,"line":2,"sku":"b","qty":5}' 8
		ev c public.countries '{"code":"DE"}' '{"code":"DE","name":"Germany"}' 4
		order u 1 102 paid
		ev d public.countries '{"code":"FR"}' '{"code":"FR","name":"France"}' 9
		ev u shop.products '{"id":1}' '{"id":1,"title":"pen","price":"1.75"}' 41
		ev u public.accounts '{"id":9007199254740993}' '{"id":9007199254740993,"owner":"bob"}' 6
		# replays of older changes, after the newer ones: nothing changes
		ev c public.accounts '{"id":9007199254740993}' '{"id":9007199254740993,"owner":"ann"}' 5
		order c 1 100 new
		ev c public.order_lines '{"order_id":1,"line":2}' '{"order_id":1,"line":2,"sku":"b","qty":2}' 7
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --batch=4 --dlq="$WORK/dlq" \
		--map public.orders=analytics.fct_orders --map 'shop.products=mart.dim_products' \
		--map 'public.*=mart.*' <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(rows analytics.fct_orders "id, status, cdc_pos")" "$o1|paid|102
$o2|new|101"
	assert_equal "$(rows mart.accounts "id, owner, cdc_pos")" "9007199254740993|bob|6"
	assert_equal "$(rows mart.order_lines "order_id, line, sku, qty, cdc_pos")" "1|1|a|1|6
1|2|b|5|8"
	assert_equal "$(rows mart.countries "code, name, cdc_pos, is_deleted")" "DE|Germany|4|f
FR|France|9|t"
	assert_equal "$(rows mart.dim_products "id, title, price, cdc_pos")" "1|pen|1.75|41"
}

@test "patterns are tried in the order given, after the explicit pairs" {
	mart
	sql -d "$WH" -c "CREATE TABLE analytics.accounts (LIKE mart.accounts);
		ALTER TABLE analytics.accounts ADD PRIMARY KEY (id);
		CREATE TABLE analytics.items (id bigint PRIMARY KEY, name text, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false)"
	{
		ev c public.accounts '{"id":1}' '{"id":1,"owner":"ann"}' 5
		ev c shop.items '{"id":1}' '{"id":1,"name":"pen"}' 6
		ev c public.countries '{"code":"FR"}' '{"code":"FR","name":"France"}' 3
	} | pg-upsert -d "$WH" --map '*.*=analytics.*' --map 'public.*=mart.*' --map 'public.countries=mart.countries'
	assert_equal "$(rows analytics.accounts "id, owner")" "1|ann"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM mart.accounts")" 0
	assert_equal "$(rows analytics.items "id, name")" "1|pen"
	assert_equal "$(rows mart.countries "code, name")" "FR|France"
}

@test "a batch holding several tables is applied in one transaction" {
	mart
	# each statement records the id of its top-level transaction
	sql -d "$WH" -c "CREATE TABLE txlog (tbl text, tx bigint);
		CREATE FUNCTION log_tx() RETURNS trigger LANGUAGE plpgsql AS
			\$\$ BEGIN INSERT INTO txlog VALUES (TG_TABLE_NAME, txid_current()); RETURN NULL; END \$\$;
		CREATE TRIGGER log_tx AFTER INSERT ON analytics.fct_orders FOR EACH STATEMENT EXECUTE FUNCTION log_tx();
		CREATE TRIGGER log_tx AFTER INSERT ON mart.accounts FOR EACH STATEMENT EXECUTE FUNCTION log_tx();
		CREATE TRIGGER log_tx AFTER INSERT ON mart.countries FOR EACH STATEMENT EXECUTE FUNCTION log_tx()"
	{
		order c 1 100 new
		ev c public.accounts '{"id":1}' '{"id":1,"owner":"ann"}' 5
		ev c public.countries '{"code":"FR"}' '{"code":"FR","name":"France"}' 3
		order c 2 101 new
	} | pg-upsert -d "$WH" --linger=5000 --map public.orders=analytics.fct_orders --map 'public.*=mart.*'
	assert_equal "$(sql -d "$WH" -c "SELECT count(DISTINCT tbl), count(DISTINCT tx) FROM txlog")" "3|1"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 2
}

@test "a row one table refuses is dead-lettered alone; the other tables' rows of its batch commit" {
	mart
	{
		ev c public.accounts '{"id":1}' '{"id":1,"owner":"ann"}' 5
		ev c public.order_lines '{"order_id":1,"line":1}' '{"order_id":1,"line":1,"sku":"a","qty":"many"}' 6
		ev c public.order_lines '{"order_id":1,"line":2}' '{"order_id":1,"line":2,"sku":"b","qty":2}' 7
		ev c public.countries '{"code":"FR"}' '{"code":"FR","name":"France"}' 3
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=mart.*' --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter 'invalid input syntax for type integer: "many"' 2 "$(sed -n 2p "$WORK/in")")"
	assert_equal "$(rows mart.accounts "id, owner")" "1|ann"
	assert_equal "$(rows mart.order_lines "order_id, line, qty")" "1|2|2"
	assert_equal "$(rows mart.countries "code, name")" "FR|France"
}

@test "column renames: the original warehouse's order_id for the source's id" {
	sql -d "$WH" -c "CREATE TABLE analytics.orig_orders (order_id uuid PRIMARY KEY, status text,
		amount_cents bigint, note_text text, last_cdc_ts timestamptz, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false, extra jsonb)"
	local id1 id2 id3
	id1=$(uuid 1)
	id2=$(uuid 2)
	id3=$(uuid 3)
	{
		ev c public.orders "{\"id\":\"$id1\"}" "{\"id\":\"$id1\",\"status\":\"new\",\"amount_cents\":5,\"note\":\"fragile\",\"gift\":true}" 10
		ev c public.orders "{\"id\":\"$id2\"}" "{\"id\":\"$id2\",\"status\":\"new\",\"amount_cents\":7,\"note\":\"big\"}" 11
		# an update that left the note, TOASTed, unchanged, as logical capture writes it
		printf '{"op":"u","table":"public.orders","key":{"id":"%s"},"before":null,"after":{"id":"%s","status":"paid","amount_cents":5},"unchanged":["note"],"pos":12}\n' "$id1" "$id1"
		# a key change: the new key's unchanged note comes from the old key's row
		printf '{"op":"d","table":"public.orders","key":{"id":"%s"},"before":{"id":"%s"},"after":null,"pos":13}\n' "$id2" "$id2"
		printf '{"op":"c","table":"public.orders","key":{"id":"%s"},"old_key":{"id":"%s"},"before":null,"after":{"id":"%s","status":"moved","amount_cents":7},"unchanged":["note"],"pos":14}\n' "$id3" "$id2" "$id3"
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --batch=2 --dlq="$WORK/dlq" \
		--map 'public.orders=analytics.orig_orders(id=order_id,note=note_text)' <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(rows analytics.orig_orders "order_id, status, amount_cents, note_text, cdc_pos, is_deleted, extra")" \
		"$id1|paid|5|fragile|12|f|
$id2|new|7|big|13|t|
$id3|moved|7|big|14|f|"
	# the dead letter of a renamed line is the line as it came
	printf '{"op":"c","table":"public.orders","key":{"id":"%s"},"before":null,"after":{"id":"%s","amount_cents":"x"},"pos":20}\n' "$id1" "$id1" >"$WORK/bad"
	pg-upsert -d "$WH" --map 'public.orders=analytics.orig_orders(id=order_id)' --dlq="$WORK/dlq" <"$WORK/bad"
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter 'invalid input syntax for type bigint: "x"' 1 "$(cat "$WORK/bad")")"
}

# --------------------------------------------------------------- unmapped

@test "--unmapped=dlq (the default) dead-letters an unmapped table's events; --unmapped=skip counts them" {
	{
		item c 1 10 one
		customer c 2 11 ann
		item c 2 12 two
		customer u 2 13 bob
		ev t public.customers null null 14
	} >"$WORK/in"
	sql -d "$WH" -c "CREATE TABLE analytics.items (id bigint PRIMARY KEY, name text, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false)"
	run --separate-stderr pg-upsert -d "$WH" --map public.items=analytics.items --dlq="$WORK/dlq" \
		--ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(dead_reasons "$WORK/dlq" | uniq -c | sed 's/^ *//')" "3 no mapping for table public.customers"
	assert_equal "$(cat "$WORK/ack")" 5
	assert_equal "$(rows analytics.items "id, name")" "1|one
2|two"

	run --separate-stderr pg-upsert -d "$WH" --map public.items=analytics.items --unmapped=skip \
		--dlq="$WORK/dlq2" --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" "pg-upsert: skipped 3 events of tables with no mapping: public.customers (3)"
	[ ! -s "$WORK/dlq2" ]
	assert_equal "$(cat "$WORK/ack")" 5
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.items")" 2
}

@test "under --map an event that names no table is dead-lettered" {
	sql -d "$WH" -c "CREATE TABLE analytics.items (id bigint PRIMARY KEY, name text, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false)"
	printf '%s\n' '{"op":"c","key":{"id":1},"after":{"id":1},"pos":1}' \
		'{"op":"c","table":7,"key":{"id":1},"after":{"id":1},"pos":1}' >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=analytics.*' --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$(dead_reasons "$WORK/dlq")" 'not an event: no \"table\"
not an event: \"table\" is not a string'
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.items")" 0
}

@test "two source tables mapped to one target: the second is refused, naming both" {
	mart
	{
		ev c public.accounts '{"id":1}' '{"id":1,"owner":"ann"}' 5
		ev c legacy.accounts '{"id":2}' '{"id":2,"owner":"old"}' 900
		ev c public.accounts '{"id":3}' '{"id":3,"owner":"cy"}' 6
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map public.accounts=mart.accounts \
		--map legacy.accounts=mart.accounts --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" "pg-upsert: warning: table legacy.accounts maps to mart.accounts, which already takes the events of table public.accounts: its events are dead-lettered"
	assert_equal "$(dead_reasons "$WORK/dlq")" "table legacy.accounts maps to mart.accounts, which already takes the events of table public.accounts"
	assert_equal "$(rows mart.accounts "id, owner")" "1|ann
3|cy"
}

# ---------------------------------------------------------- schema events

@test "schema events without --create or --evolve change nothing; a missing table's events are dead-lettered" {
	sql -d "$WH" -c "CREATE TABLE analytics.items (id bigint PRIMARY KEY, name text, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false)"
	{
		schema_ev public.items 1 '"id"' id:bigint name:text note:text
		item c 1 10 one
		schema_ev public.gone 2 '"id"' id:bigint
		ev c public.gone '{"id":1}' '{"id":1}' 11
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=analytics.*' --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter 'table analytics.gone does not exist' 4 "$(sed -n 4p "$WORK/in")")"
	assert_equal "$(rows analytics.items "id, name")" "1|one"
	assert_equal "$(sql -d "$WH" -c "SELECT to_regclass('analytics.gone') IS NULL,
		(SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note')")" "t|0"
}

@test "--create makes missing tables from schema events: same types, the key, guard and delete columns, tombstones" {
	{
		schema_ev public.items 1 '"id"' id:bigint 'name:character varying(20)' 'price:numeric(10,2)' 'tags:text[]' 'seen:timestamp with time zone'
		schema_ev public.lines 2 '"order_id","line"' order_id:uuid line:integer sku:text
		ev c public.items '{"id":1}' '{"id":1,"name":"pen","price":"1.50","tags":["a","b"],"seen":"2026-01-01T00:00:00+00:00"}' 10
		ev c public.lines "{\"order_id\":\"$(uuid 1)\",\"line\":1}" "{\"order_id\":\"$(uuid 1)\",\"line\":1,\"sku\":\"x\"}" 11
		ev d public.items '{"id":1}' '{"id":1,"name":"pen","price":"1.50","tags":["a","b"],"seen":"2026-01-01T00:00:00+00:00"}' 12
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=shop.*' --create --delete=soft --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) ||
		CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'shop.items'::regclass AND attnum > 0 AND NOT attisdropped")" \
		"id bigint not null, name character varying(20), price numeric(10,2), tags text[], seen timestamp with time zone, cdc_pos numeric(20,0) not null, last_cdc_ts timestamp with time zone, is_deleted boolean not null"
	assert_equal "$(sql -d "$WH" -c "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'shop.lines'::regclass AND contype = 'p'")" \
		"PRIMARY KEY (order_id, line)"
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'shop.cdc_tombstones'::regclass AND attnum > 0")" \
		"tbl text, key jsonb, pos numeric(20,0), deleted_at timestamp with time zone"
	assert_equal "$(rows shop.items "id, name, price, tags, cdc_pos, is_deleted")" "1|pen|1.50|{a,b}|12|t"
	assert_equal "$(rows shop.lines "line, sku")" "1|x"
	# run again: the tables are there, nothing changes
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=shop.*' --create --delete=soft <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
}

@test "--create with a column rename and -t; without --delete=soft no is_deleted column" {
	{
		schema_ev public.orders 1 '"id"' id:uuid status:text
		order c 1 10 new
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map 'public.orders=analytics.orders2(id=order_id)' --create \
		--delete=hard --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(attname, ' ' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = 'analytics.orders2'::regclass AND attnum > 0")" "order_id status cdc_pos last_cdc_ts"
	assert_equal "$(rows analytics.orders2 "order_id, status")" "$(uuid 1)|new"
	# -t naming a table that does not exist yet
	run --separate-stderr pg-upsert -d "$WH" -t analytics.orders3 --create --delete=hard <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(rows analytics.orders3 "id, status")" "$(uuid 1)|new"
}

@test "--evolve adds a column the source gained before the rows that carry it, even within one batch of input" {
	sql -d "$WH" -c "CREATE TABLE analytics.items (id bigint PRIMARY KEY, name text, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false)"
	{
		schema_ev public.items 1 '"id"' id:bigint name:text
		item c 1 10 one
		item c 2 11 two
		schema_ev public.items 12 '"id"' id:bigint name:text 'note:character varying(30)'
		ev c public.items '{"id":3}' '{"id":3,"name":"three","note":"new"}' 12
		ev u public.items '{"id":1}' '{"id":1,"name":"one","note":"later"}' 13
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=analytics.*' --evolve --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(rows analytics.items "id, name, note, cdc_pos")" "1|one|later|13
2|two||11
3|three|new|12"
	assert_equal "$(sql -d "$WH" -c "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'analytics.items'::regclass AND attname = 'note'")" "character varying(30)"
}

@test "--evolve: a source column dropped stays in the warehouse; a type it can convert is followed" {
	sql -d "$WH" -c "CREATE TABLE analytics.items (id bigint PRIMARY KEY, name text, qty integer,
		cdc_pos numeric(20,0) NOT NULL, is_deleted boolean NOT NULL DEFAULT false)"
	{
		schema_ev public.items 1 '"id"' id:bigint name:text qty:integer
		ev c public.items '{"id":1}' '{"id":1,"name":"one","qty":2}' 10
		schema_ev public.items 11 '"id"' id:bigint qty:bigint
		ev c public.items '{"id":2}' '{"id":2,"qty":9007199254740993}' 11
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=analytics.*' --evolve --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(rows analytics.items "id, name, qty")" "1|one|2
2||9007199254740993"
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'analytics.items'::regclass AND attnum > 0 AND NOT attisdropped
		AND attname IN ('name', 'qty')")" "name text, qty bigint"
}

@test "--evolve: a type change it cannot follow is one error naming table and column; that table's events are dead-lettered, the others apply" {
	sql -d "$WH" -c "CREATE TABLE analytics.items (id bigint PRIMARY KEY, note text, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false);
		CREATE TABLE analytics.tags (id bigint PRIMARY KEY, name text, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false)"
	{
		ev c public.items '{"id":1}' '{"id":1,"note":"one"}' 10
		ev c public.tags '{"id":1}' '{"id":1,"name":"red"}' 10
		schema_ev public.items 11 '"id"' id:bigint note:integer
		ev c public.items '{"id":2}' '{"id":2,"note":2}' 11
		ev c public.tags '{"id":2}' '{"id":2,"name":"blue"}' 11
		ev u public.items '{"id":1}' '{"id":1,"note":1}' 12
	} >"$WORK/in"
	local why='table analytics.items: cannot change column "note" from text to integer: column "note" cannot be cast automatically to type integer'
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=analytics.*' --evolve --dlq="$WORK/dlq" \
		--ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" "pg-upsert: $why; its events are dead-lettered"
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter "$why" 3 "$(sed -n 3p "$WORK/in")")
$(dead_letter "$why" 4 "$(sed -n 4p "$WORK/in")")
$(dead_letter "$why" 6 "$(sed -n 6p "$WORK/in")")"
	assert_equal "$(cat "$WORK/ack")" 6
	assert_equal "$(rows analytics.items "id, note")" "1|one"
	assert_equal "$(rows analytics.tags "id, name")" "1|red
2|blue"
	assert_equal "$(sql -d "$WH" -c "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'analytics.items'::regclass AND attname = 'note'")" "text"
}

@test "--evolve with a column rename: a type change it cannot follow dead-letters that table's later events too" {
	sql -d "$WH" -c "CREATE TABLE analytics.items (id bigint PRIMARY KEY, note text, cdc_pos numeric(20,0) NOT NULL,
		is_deleted boolean NOT NULL DEFAULT false)"
	{
		ev c public.items '{"id":1}' '{"id":1,"label":"one"}' 10
		schema_ev public.items 11 '"id"' id:bigint label:integer
		ev c public.items '{"id":2}' '{"id":2,"label":2}' 11
		ev u public.items '{"id":1}' '{"id":1,"label":1}' 12
	} >"$WORK/in"
	local why='table analytics.items: cannot change column "note" from text to integer: column "note" cannot be cast automatically to type integer'
	run --separate-stderr pg-upsert -d "$WH" --map 'public.items=analytics.items(label=note)' --evolve \
		--dlq="$WORK/dlq" --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" "pg-upsert: $why; its events are dead-lettered"
	assert_equal "$(cat "$WORK/dlq")" "$(dead_letter "$why" 2 "$(sed -n 2p "$WORK/in")")
$(dead_letter "$why" 3 "$(sed -n 3p "$WORK/in")")
$(dead_letter "$why" 4 "$(sed -n 4p "$WORK/in")")"
	assert_equal "$(cat "$WORK/ack")" 4
	assert_equal "$(rows analytics.items "id, note")" "1|one"
}

@test "a type that is not a type name is never pasted into DDL" {
	{
		schema_ev public.items 1 '"id"' id:bigint 'name:text); DROP TABLE analytics.fct_orders; --'
		item c 1 10 one
		schema_ev public.more 2 '"id"' id:bigint 'x:integer, y integer'
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" --map 'public.*=analytics.*' --create --delete=soft --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$(dead_reasons "$WORK/dlq" | head -n 1)" 'table analytics.items: column \"name\" has an invalid type \"text); DROP TABLE analytics.fct_orders; --\"'
	assert_equal "$(dead_reasons "$WORK/dlq" | sed -n 3p)" \
		'table analytics.more: column \"x\" has type \"integer, y integer\": syntax error at or near \",\"'
	assert_equal "$(sql -d "$WH" -c "SELECT to_regclass('analytics.fct_orders') IS NOT NULL,
		to_regclass('analytics.items') IS NULL, to_regclass('analytics.more') IS NULL")" "t|t|t"
}

# ------------------------------------------------- the warehouse changing

@test "a warehouse column dropped under a running pg-upsert: the table is read again and the rows applied, no exit" {
	sql -d "$WH" -c "CREATE TABLE analytics.items (id bigint PRIMARY KEY, name text, note text,
		cdc_pos numeric(20,0) NOT NULL, is_deleted boolean NOT NULL DEFAULT false, extra jsonb)"
	mkfifo "$WORK/in"
	pg-upsert -d "$WH" -t analytics.items --ack="$WORK/ack" --dlq="$WORK/dlq" \
		<"$WORK/in" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/in"
	ev c public.items '{"id":1}' '{"id":1,"name":"one","note":"a"}' 10 >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 1 ]'
	sql -d "$WH" -c "ALTER TABLE analytics.items DROP COLUMN note"
	ev c public.items '{"id":2}' '{"id":2,"name":"two","note":"b"}' 11 >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 2 ]'
	exec 4>&-
	local rc=0
	wait "$BG" || rc=$?
	BG=
	[ "$rc" -eq 0 ]
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(cat "$WORK/err")" 'pg-upsert: warning: table analytics.items changed: column "note" of relation "items" does not exist; reading it again'
	assert_equal "$(rows analytics.items "id, name, extra")" '1|one|
2|two|{"note": "b"}'
}
