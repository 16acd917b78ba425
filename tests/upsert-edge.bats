#!/usr/bin/env bats
# pg-upsert at the edges, against a real PostgreSQL: truncates, key changes
# with unchanged columns, deletes that carry only their key, constraints
# checked at COMMIT, the byte bound of a batch, a partial last line, and
# dead letters too large to keep whole.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source warehouse
	sql -d wh_template -c "CREATE TABLE doc (id int PRIMARY KEY, n int, body text,
		cdc_pos numeric(20,0), is_deleted boolean)"
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
	drop_slot "edge_${BATS_TEST_NUMBER}"
}

# truncate POS: a truncate of the orders table
truncate_event() {
	printf '{"op":"t","table":"public.orders","key":null,"before":null,"after":null,"pos":%s,"txid":99,"ts_ms":1764150000999}\n' "$1"
}

# states: every row as id:status:cdc_pos:is_deleted, in id order, on one line
states() {
	sql -d "$WH" -c "SELECT string_agg(right(id::text, 2) || ':' || status || ':' || cdc_pos || ':' || is_deleted, ' ' ORDER BY id)
		FROM analytics.fct_orders"
}

# doc events, as logical capture writes them for table doc (id, n, body):
# doc_c ID POS N BODY      an insert with every column
# doc_u ID POS N           an update that left body, TOASTed, unchanged
# doc_move ID OLD POS N    the insert of a key change from OLD, body unchanged
# doc_k ID POS             a delete with only the key (REPLICA IDENTITY DEFAULT)
doc_c() {
	printf '{"op":"c","table":"public.doc","key":{"id":%s},"before":null,"after":{"id":%s,"n":%s,"body":"%s"},"pos":%s}\n' "$1" "$1" "$3" "$4" "$2"
}
doc_u() {
	printf '{"op":"u","table":"public.doc","key":{"id":%s},"before":null,"after":{"id":%s,"n":%s},"unchanged":["body"],"pos":%s}\n' "$1" "$1" "$3" "$2"
}
doc_move() {
	printf '{"op":"c","table":"public.doc","key":{"id":%s},"old_key":{"id":%s},"before":null,"after":{"id":%s,"n":%s},"unchanged":["body"],"pos":%s}\n' "$1" "$2" "$1" "$4" "$3"
}
doc_k() {
	printf '{"op":"d","table":"public.doc","key":{"id":%s},"before":{"id":%s},"after":null,"pos":%s}\n' "$1" "$1" "$2"
}

# docs: every row of doc as id|n|body|cdc_pos|is_deleted
docs() {
	sql -d "$WH" -c "SELECT id, n, body, cdc_pos, is_deleted FROM doc ORDER BY id"
}

# ---------------------------------------------------------------- truncate

@test "a truncate marks every older row deleted with its pos as guard; newer rows stay" {
	{
		order c 1 10 one
		order c 2 20 two
		order c 3 40 three
	} | upsert
	run --separate-stderr upsert --dlq="$WORK/dlq" < <(truncate_event 30)
	assert_success
	assert_equal "$stderr" ""
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(states)" "01:one:30:true 02:two:30:true 03:three:40:false"
	assert_equal "$(sql -d "$WH" -c "SELECT last_cdc_ts FROM analytics.fct_orders WHERE cdc_pos = 30 LIMIT 1")" \
		"2025-11-26 09:40:00.999+00"
	# a change older than the truncate, replayed, cannot bring a row back
	order u 2 25 stale | upsert
	assert_equal "$(state 2)" "two|100|30|t"
	# a newer insert does
	order c 2 50 again | upsert
	assert_equal "$(state 2)" "again|100|50|f"
}

@test "--delete=hard: a truncate removes every older row; newer rows stay" {
	{
		order c 1 10 one
		order c 2 20 two
		order c 3 40 three
	} | upsert --delete=hard
	truncate_event 30 | upsert --delete=hard
	assert_equal "$(states)" "03:three:40:false"
}

@test "the same truncate applied again changes nothing" {
	{
		order c 1 10 one
		order d 2 15 two
		order c 3 40 three
	} | upsert
	truncate_event 30 | upsert
	sql -d "$WH" -c "SELECT xmin, * FROM analytics.fct_orders ORDER BY id" >"$WORK/first"
	# again, alone, and twice in one batch, as each partition of a topic delivers it
	truncate_event 30 | upsert
	{ truncate_event 30; truncate_event 30; } | upsert
	sql -d "$WH" -c "SELECT xmin, * FROM analytics.fct_orders ORDER BY id" >"$WORK/again"
	run diff "$WORK/first" "$WORK/again"
	assert_success
	assert_equal "$(states)" "01:one:30:true 02:two:30:true 03:three:40:false"
}

@test "a truncate mid-batch removes the rows before it, whatever their place in the batch, and keeps those after it" {
	{
		order c 1 10 one
		order c 2 30 two
		order u 1 15 one-later
		order c 3 25 three
		order c 4 5 four
	} >"$WORK/changes"
	local at
	for at in 1 3 5; do
		dropdb "$WH" && createdb -T wh_template "$WH"
		{ head -n $((at - 1)) "$WORK/changes"; truncate_event 20; tail -n +"$at" "$WORK/changes"; } >"$WORK/in"
		run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
		assert_success
		[ ! -s "$WORK/dlq" ]
		assert_equal "$(states)" "01:one-later:20:true 02:two:30:false 03:three:25:false 04:four:20:true"
	done
	# line by line, an older change read after the truncate (from another
	# partition) is live until the truncate's copy in its own partition arrives
	dropdb "$WH" && createdb -T wh_template "$WH"
	{ head -n 2 "$WORK/changes"; truncate_event 20; tail -n +3 "$WORK/changes"; } | upsert --batch=1
	assert_equal "$(states)" "01:one:20:true 02:two:30:false 03:three:25:false 04:four:5:false"
	truncate_event 20 | upsert
	assert_equal "$(states)" "01:one:20:true 02:two:30:false 03:three:25:false 04:four:20:true"
}

# -------------------------------------------------------------- key change

@test "a key change takes its unchanged columns from the old key's latest change in the same batch" {
	{
		doc_c 1 10 0 first
		doc_u 1 20 1
		doc_c 1 30 2 second
		doc_k 1 40
		doc_move 2 1 40 3
		doc_u 2 50 4
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t doc --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(docs)" "1|2|second|40|t
2|4|second|50|f"
}

@test "a key change takes its unchanged columns from the old key's row in the table, across batches" {
	{
		doc_c 1 10 0 first
		doc_k 1 40
		doc_move 2 1 40 3
		doc_u 2 50 4
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t doc --batch=1 --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(docs)" "1|0|first|40|t
2|4|first|50|f"
	# the old key's row not deleted yet gives them too
	{ doc_c 5 60 0 fifth; } | pg-upsert -d "$WH" -t doc
	{ doc_move 6 5 70 1; } | pg-upsert -d "$WH" -t doc
	assert_equal "$(sql -d "$WH" -c "SELECT n, body FROM doc WHERE id = 6")" "1|fifth"
}

@test "a key change whose old key has no row anywhere is dead-lettered, never written with NULL" {
	{
		doc_c 7 5 0 other
		doc_move 2 1 40 3
		doc_c 8 6 0 more
	} >"$WORK/in"
	run --separate-stderr pg-upsert -d "$WH" -t doc --dlq="$WORK/dlq" --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run cat "$WORK/dlq"
	assert_output "$(dead_letter 'unchanged column "body" has no value: no row under the key or old_key' 2 "$(sed -n 2p "$WORK/in")")"
	assert_equal "$(docs)" "7|0|other|5|f
8|0|more|6|f"
	assert_equal "$(cat "$WORK/ack")" 3
}

# ------------------------------------------------------------------ deletes

@test "a delete whose old row holds only the key keeps the row's values under soft delete" {
	order c 1 1 paid 500 | upsert
	printf '{"op":"d","key":{"id":"%s"},"before":{"id":"%s"},"after":null,"pos":2}\n' "$(uuid 1)" "$(uuid 1)" | upsert
	assert_equal "$(state 1)" "paid|500|2|t"
	# in one batch with the changes before it
	{
		order c 2 3 created 100
		order u 2 4 paid 600
		printf '{"op":"d","key":{"id":"%s"},"before":{"id":"%s"},"after":null,"pos":5}\n' "$(uuid 2)" "$(uuid 2)"
	} | upsert
	assert_equal "$(state 2)" "paid|600|5|t"
}

@test "a delete captured in logical mode keeps the row's values, as in trigger mode" {
	new_source_db
	local slot="edge_${BATS_TEST_NUMBER}"
	local logical=(pg-cdc-tail -d "$DB" --mode=logical --slot="$slot" --publication=edge_pub -t orders)
	"${logical[@]}" --create-slot >/dev/null
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES ('$(uuid 1)', gen_random_uuid(), 'created', 100, 'EUR', 'DE')"
	sql -d "$DB" -c "UPDATE orders SET status = 'paid', amount_cents = 500" -c "DELETE FROM orders"
	pg-cdc-tail -d "$DB" -t orders >"$WORK/trigger"
	"${logical[@]}" >"$WORK/logical"
	# the logical delete's old row is the key alone
	grep -q "\"op\":\"d\".*\"before\":{\"id\":\"$(uuid 1)\"}," "$WORK/logical"
	upsert <"$WORK/trigger"
	assert_equal "$(sql -d "$WH" -c "SELECT status, amount_cents, is_deleted FROM analytics.fct_orders")" "paid|500|t"
	local mode
	for mode in --batch=5000 --batch=1; do
		dropdb "$WH" && createdb -T wh_template "$WH"
		upsert "$mode" <"$WORK/logical"
		assert_equal "$(sql -d "$WH" -c "SELECT status, amount_cents, is_deleted FROM analytics.fct_orders")" "paid|500|t"
	done
}

# ------------------------------------------------ constraints checked at COMMIT

@test "a deferred foreign key refusing one row at COMMIT: that row is dead-lettered, the rest commits" {
	sql -d "$WH" -c "CREATE TABLE cust (id int PRIMARY KEY); INSERT INTO cust VALUES (1), (2)" \
		-c "CREATE TABLE item (id int PRIMARY KEY, cust_id int REFERENCES cust DEFERRABLE INITIALLY DEFERRED,
			cdc_pos numeric(20,0), is_deleted boolean)"
	{
		echo '{"op":"c","key":{"id":1},"after":{"id":1,"cust_id":1},"pos":1}'
		echo '{"op":"c","key":{"id":2},"after":{"id":2,"cust_id":99},"pos":2}'
		echo '{"op":"c","key":{"id":3},"after":{"id":3,"cust_id":2},"pos":3}'
	} >"$WORK/in"
	run --separate-stderr timeout 30 pg-upsert -d "$WH" -t item --dlq="$WORK/dlq" --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run cat "$WORK/dlq"
	assert_output "$(dead_letter 'insert or update on table "item" violates foreign key constraint "item_cust_id_fkey"' 2 "$(sed -n 2p "$WORK/in")")"
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(id || ':' || cust_id, ' ' ORDER BY id) FROM item")" "1:1 3:2"
	assert_equal "$(cat "$WORK/ack")" 3
}

@test "a deferred constraint trigger raising at COMMIT: that row is dead-lettered, the rest commits" {
	sql -d "$WH" -c "CREATE TABLE acct (id int PRIMARY KEY, balance int, cdc_pos numeric(20,0), is_deleted boolean)" \
		-c "CREATE FUNCTION no_overdraft() RETURNS trigger LANGUAGE plpgsql AS
			\$\$BEGIN IF NEW.balance < 0 THEN RAISE EXCEPTION 'account % overdrawn', NEW.id; END IF; RETURN NULL; END\$\$" \
		-c "CREATE CONSTRAINT TRIGGER no_overdraft AFTER INSERT OR UPDATE ON acct
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION no_overdraft()"
	{
		echo '{"op":"c","key":{"id":1},"after":{"id":1,"balance":10},"pos":1}'
		echo '{"op":"c","key":{"id":2},"after":{"id":2,"balance":20},"pos":2}'
		echo '{"op":"u","key":{"id":1},"after":{"id":1,"balance":-5},"pos":3}'
		echo '{"op":"c","key":{"id":3},"after":{"id":3,"balance":30},"pos":4}'
	} >"$WORK/in"
	run --separate-stderr timeout 30 pg-upsert -d "$WH" -t acct --dlq="$WORK/dlq" --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run cat "$WORK/dlq"
	assert_output "$(dead_letter 'account 1 overdrawn' 3 "$(sed -n 3p "$WORK/in")")"
	# the insert before the refused update stays
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(id || ':' || balance, ' ' ORDER BY id) FROM acct")" "1:10 2:20 3:30"
	assert_equal "$(cat "$WORK/ack")" 4
}

# a batch is sent whole (its COMMIT too) and the next one read while the
# server applies it: a refusal of the batch sent is dealt with before
# anything of the next one goes
@test "a batch sent ahead refused at COMMIT: applied again alone, its row dead-lettered, the next batch commits after it, acks in order" {
	sql -d "$WH" -c "CREATE TABLE acct (id int PRIMARY KEY, balance int, cdc_pos numeric(20,0), is_deleted boolean)" \
		-c "CREATE TABLE seen (n serial, id int, balance int)" \
		-c "CREATE FUNCTION no_overdraft() RETURNS trigger LANGUAGE plpgsql AS
			\$\$BEGIN IF NEW.balance < 0 THEN RAISE EXCEPTION 'account % overdrawn', NEW.id; END IF;
			INSERT INTO seen (id, balance) VALUES (NEW.id, NEW.balance); RETURN NULL; END\$\$" \
		-c "CREATE CONSTRAINT TRIGGER no_overdraft AFTER INSERT OR UPDATE ON acct
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION no_overdraft()"
	local i
	for i in 1 2 3 4 5 6; do
		# line 4 overdraws account 2 (refused at COMMIT); 5 and 6 come after it in the next batch
		printf '{"op":"u","key":{"id":%s},"after":{"id":%s,"balance":%s},"pos":%s}\n' \
			$(((i - 1) % 2 + 1)) $(((i - 1) % 2 + 1)) "$([ "$i" = 4 ] && echo -5 || echo "$((i * 10))")" "$i"
	done >"$WORK/in"
	: >"$WORK/acks"
	pg-upsert -v -d "$WH" -t acct --batch=2 --dlq="$WORK/dlq" --ack="$WORK/ack" <"$WORK/in" 2>"$WORK/err" &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		cat "$WORK/ack" >>"$WORK/acks" 2>/dev/null || true
		sleep 0.01
	done
	wait "$pid"
	grep -q "batch of 2 sent ahead not committed: account 2 overdrawn; applying it again" "$WORK/err"
	run cat "$WORK/dlq"
	assert_output "$(dead_letter 'account 2 overdrawn' 4 "$(sed -n 4p "$WORK/in")")"
	# committed in input order: line 3 with its batch, then the next batch's 5 and 6
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(id || ':' || balance, ' ' ORDER BY n) FROM seen")" "1:10 2:20 1:30 1:50 2:60"
	assert_equal "$(sql -d "$WH" -c "SELECT string_agg(id || ':' || balance, ' ' ORDER BY id) FROM acct")" "1:50 2:60"
	assert_equal "$(cat "$WORK/ack")" 6
	# the ack moved batch by batch, never past a batch not committed
	run sh -c "uniq '$WORK/acks' | tr '\n' ' '"
	[[ "$output" =~ ^(0\ )?(2\ )?(4\ )?(6\ )?$ ]]
}

# ------------------------------------------------------------ batch bytes

@test "--batch-bytes takes a size from 1k to 512M" {
	local bad
	for bad in 1023 513M 1x k 1.5M ''; do
		run --separate-stderr pg-upsert -t analytics.fct_orders --batch-bytes="$bad"
		assert_failure 2
	done
	assert_equal "${stderr_lines[0]}" 'pg-upsert: error: invalid value "" for option --batch-bytes'
	run --separate-stderr pg-upsert -t analytics.fct_orders --batch-bytes=513M
	assert_equal "${stderr_lines[0]}" "pg-upsert: error: --batch-bytes must be in range 1k..512M"
	upsert --batch-bytes=1k </dev/null
	upsert --batch-bytes=512M </dev/null
}

@test "an event over --batch-bytes is dead-lettered whole and its neighbours commit" {
	{
		order c 1 1 one
		order c 2 2 "$(head -c 1200 /dev/zero | tr '\0' y)"
		order c 3 3 three
	} >"$WORK/in"
	run --separate-stderr upsert --batch-bytes=1k --dlq="$WORK/dlq" --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run cat "$WORK/dlq"
	assert_output "$(dead_letter 'line too long: more than 1024 bytes (--batch-bytes)' 2 "$(sed -n 2p "$WORK/in")")"
	assert_equal "$(states)" "01:one:1:false 03:three:3:false"
	assert_equal "$(cat "$WORK/ack")" 3
}

@test "no transaction holds more bytes of events than --batch-bytes" {
	# which transaction wrote each row
	sql -d "$WH" -c "CREATE TABLE written (id uuid, tx bigint)" \
		-c "CREATE FUNCTION note_tx() RETURNS trigger LANGUAGE plpgsql AS
			\$\$BEGIN INSERT INTO written VALUES (NEW.id, txid_current()); RETURN NULL; END\$\$" \
		-c "CREATE TRIGGER note_tx AFTER INSERT OR UPDATE ON analytics.fct_orders FOR EACH ROW EXECUTE FUNCTION note_tx()"
	local n len
	for n in $(seq 100 199); do order c "$n" "$n" "s$n"; done >"$WORK/in"
	len=$(head -n 1 "$WORK/in" | tr -d '\n' | wc -c)
	[ "$(awk '{ print length($0) }' "$WORK/in" | sort -u)" = "$len" ]
	upsert --batch-bytes=1k --linger=60000 <"$WORK/in"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 100
	# as many whole lines as 1024 bytes hold, never one more
	assert_equal "$(sql -d "$WH" -c "SELECT max(c) FROM (SELECT count(*) AS c FROM written GROUP BY tx) AS t")" \
		$((1024 / len))
}

# ------------------------------------------------------------ partial lines

@test "with --ack a last line without a newline is not applied, not acknowledged, not dead-lettered: a warning" {
	{
		order c 1 1 one
		order c 2 2 two
		order c 3 3 three | head -c 50
	} >"$WORK/in"
	run --separate-stderr upsert --ack="$WORK/ack" --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" "pg-upsert: warning: input ended inside line 3 (50 bytes without a newline): not applied, not acknowledged, left for redelivery"
	[ ! -s "$WORK/dlq" ]
	assert_equal "$(cat "$WORK/ack")" 2
	assert_equal "$(states)" "01:one:1:false 02:two:2:false"
	# a whole event that lacks only its newline waits for redelivery too
	printf '%s' "$(order c 4 4 four)" | upsert --ack="$WORK/ack" 2>/dev/null
	assert_equal "$(state 4)" ""
}

@test "without --ack a last line without a newline is applied" {
	{
		order c 1 1 one
		printf '%s' "$(order c 2 2 two)"
	} >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(states)" "01:one:1:false 02:two:2:false"
}

@test "an over-long last line without a newline is dead-lettered and pg-upsert ends" {
	{
		order c 1 1 one
		head -c 65M /dev/zero | tr '\0' x
	} >"$WORK/in"
	run --separate-stderr timeout 60 pg-upsert -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	local head='{"error":"line too long: more than 67108864 bytes (--batch-bytes)","input_line":2,"truncated":true,"line":"'
	assert_equal "$(head -c ${#head} "$WORK/dlq")" "$head"
	assert_equal "$(stat -c %s "$WORK/dlq")" $((${#head} + (16 << 20) + 3))
	assert_equal "$(states)" "01:one:1:false"
}

# ------------------------------------------------------------ dead letters

@test "a dead letter over 16 MiB keeps its first 16 MiB, whole characters, and says truncated" {
	{
		order c 1 1 one
		# not JSON; the 16 MiB boundary falls inside the two bytes of an e-acute
		head -c $(((16 << 20) - 1)) /dev/zero | tr '\0' x
		printf '\xc3\xa9'
		head -c 1000 /dev/zero | tr '\0' x
		echo
		order c 2 2 two
	} >"$WORK/in"
	{
		printf '{"error":"not JSON: unexpected character","input_line":2,"truncated":true,"line":"'
		head -c $(((16 << 20) - 1)) /dev/zero | tr '\0' x
		printf '"}\n'
	} >"$WORK/expected"
	run --separate-stderr upsert --dlq="$WORK/dlq" --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	cmp "$WORK/expected" "$WORK/dlq"
	assert_equal "$(states)" "01:one:1:false 02:two:2:false"
	assert_equal "$(cat "$WORK/ack")" 3
}

# odd EVENT...: the events, one per line, applied to the table "odd" in one batch
odd() {
	printf '%s\n' "$@" | pg-upsert -d "$WH" -t odd
}

@test "columns named like the aliases of pg-upsert's statements (r, merged, p, row, ...) take their values" {
	sql -d "$WH" -c "CREATE TABLE odd (id int PRIMARY KEY, r int4range, merged text, p int, \"row\" text,
		k text, x text, n int, ts text, cdc_pos numeric(20,0), is_deleted boolean)"
	# plain changes
	odd '{"op":"c","table":"public.odd","key":{"id":1},"before":null,"after":{"id":1,"r":"[1,5)","merged":"m","p":7,"row":"w","k":"k","x":"x","n":3,"ts":"t"},"pos":10}' \
	    '{"op":"u","table":"public.odd","key":{"id":1},"before":null,"after":{"id":1,"r":"[2,6)","merged":"m2","p":8,"row":"w2","k":"k2","x":"x2","n":4,"ts":"t2"},"pos":11}'
	assert_equal "$(sql -d "$WH" -c "SELECT id, r, merged, p, \"row\", k, x, n, ts, cdc_pos FROM odd")" "1|[2,6)|m2|8|w2|k2|x2|4|t2|11"
	# an unchanged column kept from the table (the merge statement)
	odd '{"op":"u","table":"public.odd","key":{"id":1},"before":null,"after":{"id":1,"r":"[3,7)","p":9,"row":"w3","k":"k3","x":"x3","n":5,"ts":"t3"},"unchanged":["merged"],"pos":12}'
	assert_equal "$(sql -d "$WH" -c "SELECT id, r, merged, p, cdc_pos FROM odd")" "1|[3,7)|m2|9|12"
	# a key change naming an unchanged column (the statement for key changes)
	odd '{"op":"d","table":"public.odd","key":{"id":1},"before":{"id":1},"after":null,"pos":13}' \
	    '{"op":"c","table":"public.odd","key":{"id":2},"old_key":{"id":1},"before":null,"after":{"id":2,"r":"[4,8)","p":10,"row":"w4","k":"k4","x":"x4","n":6,"ts":"t4"},"unchanged":["merged"],"pos":14}'
	assert_equal "$(sql -d "$WH" -c "SELECT id, r, merged, p, cdc_pos, is_deleted FROM odd ORDER BY id")" "1|[3,7)|m2|9|13|t
2|[4,8)|m2|10|14|f"
}
