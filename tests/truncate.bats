#!/usr/bin/env bats
# TRUNCATE and key changes, captured in both modes (pg-cdc-tail), published to
# every partition (kafka-pub -k with a null key), and carried end to end
# through a real PostgreSQL and a real Kafka broker.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source kafka
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	new_source_db
	SLOT="slot_${BATS_TEST_NUMBER}"
	LOGICAL=(pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --publication=pub)
	TOPIC="trunc_${BATS_TEST_NUMBER}"
	WORK=$(mktemp -d)
}

teardown() {
	[ -n "${PSQL_A:-}" ] && kill $PSQL_A 2>/dev/null
	drop_slot "$SLOT"
	rm -rf "$WORK"
}

# tables T...: create each as (id int PRIMARY KEY, v text) with capture enabled
tables() {
	local t
	for t in "$@"; do
		sql -d "$DB" -c "CREATE TABLE $t (id int PRIMARY KEY, v text)" -c "SELECT cdc.enable('$t')" >/dev/null
	done
}

# prepare MODE T...: in logical mode, the slot and a publication of the tables
# (made before the changes of a test); nothing to do in trigger mode
prepare() {
	local mode=$1 args=() t
	shift
	[ "$mode" = logical ] || return 0
	for t in "$@"; do args+=(-t "$t"); done
	"${LOGICAL[@]}" --create-slot "${args[@]}" >/dev/null 2>&1
}

# capture MODE T|-OPTION...: the events of the tables, drained
capture() {
	local mode=$1 args=() t
	shift
	for t in "$@"; do
		case $t in
		-*) args+=("$t") ;;
		*) args+=(-t "$t") ;;
		esac
	done
	if [ "$mode" = logical ]; then
		"${LOGICAL[@]}" "${args[@]}"
	else
		pg-cdc-tail -d "$DB" "${args[@]}"
	fi
}

# the exact form of a truncate event of table $1, as a regular expression
t_event() {
	echo "^\\{\"op\":\"t\",\"table\":\"public\\.$1\",\"key\":null,\"before\":null,\"after\":null,\"pos\":[0-9]+,\"txid\":[0-9]+,\"ts_ms\":[0-9]{13}\\}\$"
}

# inserts, TRUNCATE, inserts: c c c, t, c c with increasing pos
truncate_between_inserts() {
	tables k
	prepare "$1" k
	sql -d "$DB" -c "INSERT INTO k SELECT g, 'before' FROM generate_series(1, 3) g"
	sql -d "$DB" -c "TRUNCATE k"
	sql -d "$DB" -c "INSERT INTO k SELECT g, 'after' FROM generate_series(2, 3) g"
	capture "$1" k >"$WORK/out"
	run jq -r '.op' "$WORK/out"
	assert_output "$(printf 'c\nc\nc\nt\nc\nc')"
	run sed -n 4p "$WORK/out"
	assert_output --regexp "$(t_event k)"
	# the same, field by field, as a JSON reader sees it
	jq -se '.[3] | (keys_unsorted == ["op","table","key","before","after","pos","txid","ts_ms"])
		and .key == null and .before == null and .after == null and .table == "public.k"
		and (.pos | type) == "number" and (.txid | type) == "number"' "$WORK/out"
	# strictly increasing: every change before the truncate is below it, every one after above
	jq -se '[.[].pos] | . == sort and (unique | length) == length' "$WORK/out"
	jq -se '.[4].after.v == "after" and .[2].after.v == "before"' "$WORK/out"
}

@test "trigger: rows, TRUNCATE, rows: c events, one t event, c events, pos increasing" {
	truncate_between_inserts trigger
}

@test "logical: rows, TRUNCATE, rows: c events, one t event, c events, pos increasing" {
	truncate_between_inserts logical
}

# TRUNCATE a, b and TRUNCATE p CASCADE: one t event per captured table
truncate_several() {
	tables a b p
	sql -d "$DB" -c "CREATE TABLE ch (id int PRIMARY KEY, p_id int REFERENCES p)" -c "SELECT cdc.enable('ch')" >/dev/null
	prepare "$1" a b p ch
	sql -d "$DB" -c "INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y');
		INSERT INTO p VALUES (1, 'z'); INSERT INTO ch VALUES (1, 1)"
	sql -d "$DB" -c "TRUNCATE a, b"
	sql -d "$DB" -c "TRUNCATE p CASCADE" 2>/dev/null
	sql -d "$DB" -c "INSERT INTO p VALUES (2, 'w'); INSERT INTO ch VALUES (2, 2)"
	capture "$1" a b p ch >"$WORK/out"
	run jq -r 'select(.op == "t") | .table' "$WORK/out"
	assert_equal "$(sort <<<"$output")" "$(printf 'public.a\npublic.b\npublic.ch\npublic.p')"
	grep '"op":"t"' "$WORK/out" | while read -r line; do
		[[ $line =~ $(t_event '(a|b|p|ch)') ]] || fail "not a truncate event: $line"
	done
	# per table: the insert before, the truncate, the insert after, in pos order
	for t in p ch; do
		run jq -r "select(.table == \"public.$t\") | .op" "$WORK/out"
		assert_output "$(printf 'c\nt\nc')"
		jq -se "[.[] | select(.table == \"public.$t\") | .pos] | . == sort and (unique | length) == 3" "$WORK/out"
	done
}

@test "trigger: TRUNCATE of two tables and TRUNCATE CASCADE give one t event per captured table" {
	truncate_several trigger
}

@test "logical: TRUNCATE of two tables and TRUNCATE CASCADE give one t event per captured table" {
	truncate_several logical
}

idle_in_transaction() {
	sql -d "$DB" -c "SELECT count(*) FROM pg_stat_activity
		WHERE state = 'idle in transaction' AND datname = '$DB'"
}

waiting_locks() {
	sql -d "$DB" -c "SELECT count(*) FROM pg_locks WHERE NOT granted"
}

# A writer holds the table when TRUNCATE comes, another comes after it: the
# truncate waits for the first and the second for it, so its pos lies between.
truncate_between_writers() {
	tables k
	prepare "$1" k
	mkfifo "$WORK/a"
	psql -X -q -d "$DB" <"$WORK/a" >"$WORK/a.out" 2>&1 3>&- &
	PSQL_A=$!
	exec 4>"$WORK/a"
	echo "BEGIN; INSERT INTO k VALUES (1, 'first');" >&4
	wait_for 10 '[ "$(idle_in_transaction)" = 1 ]'
	sql -d "$DB" -c "TRUNCATE k" 3>&- &
	local trunc=$!
	wait_for 10 '[ "$(waiting_locks)" = 1 ]'
	sql -d "$DB" -c "INSERT INTO k VALUES (2, 'after')" 3>&- &
	local ins=$!
	wait_for 10 '[ "$(waiting_locks)" = 2 ]'
	echo "COMMIT;" >&4
	exec 4>&-
	wait $trunc
	wait $ins
	wait $PSQL_A
	PSQL_A=
	capture "$1" k >"$WORK/out"
	run jq -r '"\(.op) \(.after.v)"' "$WORK/out"
	assert_output "$(printf 'c first\nt null\nc after')"
	jq -se '[.[].pos] | . == sort and (unique | length) == 3' "$WORK/out"
}

@test "trigger: TRUNCATE waits for the table's writers; its pos lies between theirs" {
	truncate_between_writers trigger
}

@test "logical: TRUNCATE waits for the table's writers; its pos lies between theirs" {
	truncate_between_writers logical
}

@test "cdc.sql run again on an installation of the old cdc.sql adds truncate capture to every captured table" {
	local up="up_${BATS_TEST_NUMBER}"
	dropdb --if-exists "$up" 2>/dev/null
	createdb -T template0 "$up"
	git -C "$TOP" show 85bd0e7:sql/cdc.sql >"$WORK/old.sql"
	sql -d "$up" -f "$WORK/old.sql" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
	sql -d "$up" -c "CREATE TABLE k (id int PRIMARY KEY, v text)" -c "SELECT cdc.enable('k')" \
		-c "CREATE TABLE gone (id int PRIMARY KEY)" -c "SELECT cdc.enable('gone')" -c "DROP TABLE gone" >/dev/null
	sql -d "$up" -c "INSERT INTO k VALUES (1, 'old')"
	assert_equal "$(sql -d "$up" -c "SELECT count(*) FROM pg_trigger WHERE tgname = 'zz_cdc_truncate'")" 0
	# the upgrade, twice: re-runnable
	sql -d "$up" -f "$TOP/sql/cdc.sql" >/dev/null 2>"$WORK/err"
	sql -d "$up" -f "$TOP/sql/cdc.sql" >/dev/null 2>>"$WORK/err"
	run grep -v NOTICE "$WORK/err"
	assert_output ""
	run sql -d "$up" -c "SELECT tgrelid::regclass FROM pg_trigger WHERE tgname = 'zz_cdc_truncate' ORDER BY 1"
	assert_output "$(printf 'orders\nk')"
	sql -d "$up" -c "TRUNCATE k" -c "INSERT INTO k VALUES (2, 'new')" -c "UPDATE k SET id = 3"
	run pg-cdc-tail -d "dbname=$up" -t k
	assert_success
	assert_equal "${#lines[@]}" 5
	assert_line --index 0 --regexp '^\{"op":"c","table":"public\.k","key":\{"id":1\},"before":null,'
	assert_line --index 1 --regexp "$(t_event k)"
	assert_line --index 3 --regexp '^\{"op":"d","table":"public\.k","key":\{"id":2\},'
	assert_line --index 4 --regexp '^\{"op":"c","table":"public\.k","key":\{"id":3\},"old_key":\{"id":2\},"before":null,'
	dropdb "$up"
}

@test "a capture made by the old cdc.sql: pg-cdc-tail warns that a TRUNCATE is not logged, and goes on" {
	local up="up_${BATS_TEST_NUMBER}"
	dropdb --if-exists "$up" 2>/dev/null
	createdb -T template0 "$up"
	git -C "$TOP" show 85bd0e7:sql/cdc.sql >"$WORK/old.sql"
	sql -d "$up" -f "$WORK/old.sql" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
	sql -d "$up" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 1, 'EUR', 'DE')"
	run --separate-stderr pg-cdc-tail -d "dbname=$up" -t orders
	assert_success
	assert_equal "${#lines[@]}" 1
	assert_equal "$stderr" 'pg-cdc-tail: warning: capture of "public.orders" predates truncate capture: a TRUNCATE is not logged (run sql/cdc.sql again)'
	dropdb "$up"
}

@test "trigger: a key change is a d of the old key, then a c of the new key naming old_key" {
	sql -d "$DB" -c "CREATE TABLE kk (a int, b text, v text, PRIMARY KEY (a, b))" -c "SELECT cdc.enable('kk')" >/dev/null
	sql -d "$DB" -c "INSERT INTO kk VALUES (1, 'x', 'v'); UPDATE kk SET b = 'y'; UPDATE kk SET v = 'w'"
	run pg-cdc-tail -d "$DB" -t kk
	assert_success
	assert_equal "${#lines[@]}" 4
	assert_line --index 1 --regexp '^\{"op":"d","table":"public\.kk","key":\{"a":1,"b":"x"\},"before":\{"a":1,"b":"x","v":"v"\},"after":null,"pos":[0-9]+,'
	assert_line --index 2 --regexp '^\{"op":"c","table":"public\.kk","key":\{"a":1,"b":"y"\},"old_key":\{"a":1,"b":"x"\},"before":null,"after":\{"a":1,"b":"y","v":"v"\},"pos":[0-9]+,'
	# only the insert half of a key change names an old key
	assert_equal "$(grep -c old_key <<<"$output")" 1
	jq -se '[.[].pos] | . == sort' <<<"$output"
}

@test "logical: a key change is a d of the old key, then a c naming old_key; FULL fills an unchanged TOASTed value" {
	sql -d "$DB" -c "CREATE TABLE doc (id int PRIMARY KEY, n int, body text)"
	prepare logical doc
	sql -d "$DB" -c "INSERT INTO doc SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 4000) g"
	sql -d "$DB" -c "UPDATE doc SET id = 2 WHERE id = 1"
	sql -d "$DB" -c "ALTER TABLE doc REPLICA IDENTITY FULL; UPDATE doc SET id = 3 WHERE id = 2"
	capture logical doc >"$WORK/out"
	run jq -r '"\(.op) \(.key.id) \(.old_key.id)"' "$WORK/out"
	assert_output "$(printf 'c 1 null\nd 1 null\nc 2 1\nd 2 null\nc 3 2')"
	# the default identity: the value is not in the WAL, the event says so
	sed -n 3p "$WORK/out" | grep -Eq '^\{"op":"c","table":"public\.doc","key":\{"id":2\},"old_key":\{"id":1\},"before":null,"after":\{"id":2,"n":0\},"unchanged":\["body"\],"pos":[0-9]+,'
	# FULL: the old row has it
	sed -n 5p "$WORK/out" | grep -Eq '^\{"op":"c","table":"public\.doc","key":\{"id":3\},"old_key":\{"id":2\},"before":null,"after":\{"id":3,"n":0,"body":"[0-9a-f]+"\},"pos":[0-9]+,'
	assert_equal "$(sed -n 5p "$WORK/out" | jq -r '.after.body | length')" 128000
}

@test "logical: a publication without truncate is warned about; --create-slot makes it publish truncate" {
	tables k
	sql -d "$DB" -c "CREATE PUBLICATION pub FOR TABLE k WITH (publish = 'insert, update, delete')"
	run --separate-stderr "${LOGICAL[@]}" -t k
	assert_failure 1
	assert_equal "${stderr_lines[0]}" 'pg-cdc-tail: warning: publication "pub" does not publish truncate: such changes are not captured (use --create-slot to publish them)'
	run --separate-stderr "${LOGICAL[@]}" -t k --create-slot
	assert_success
	assert_equal "${stderr_lines[0]}" "pg-cdc-tail: ALTER PUBLICATION \"pub\" SET (publish = 'insert, update, delete, truncate')"
	assert_equal "$(sql -d "$DB" -c "SELECT pubtruncate FROM pg_publication WHERE pubname = 'pub'")" t
	sql -d "$DB" -c "INSERT INTO k VALUES (1, 'a')" -c "TRUNCATE k"
	run capture logical k
	assert_success
	assert_line --index 1 --regexp "$(t_event k)"
}

# ---- Kafka ----

# by_partition: every message of $TOPIC as {"p":partition,"o":offset,"e":event}
by_partition() {
	kcat -b "$KAFKA_BROKERS" -C -t "$TOPIC" -o beginning -e -q -f '{"p":%p,"o":%o,"e":%s}\n'
}

@test "kafka-pub -k: a line whose key is null goes to every partition, after the lines before it; --ack counts it once" {
	kafka_topic "$TOPIC" 3
	{
		for i in $(seq 1 30); do printf '{"key":{"id":%d},"n":%d}\n' $((i % 7)) "$i"; done
		printf '{"key":null,"n":31}\n'
		for i in $(seq 32 60); do printf '{"key":{"id":%d},"n":%d}\n' $((i % 7)) "$i"; done
	} >"$WORK/in"
	run --separate-stderr kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(cat "$WORK/ack")" 60
	by_partition >"$WORK/out"
	assert_equal "$(wc -l <"$WORK/out")" 62
	# one copy per partition, with no key, and the same bytes as the line
	run kcat -b "$KAFKA_BROKERS" -C -t "$TOPIC" -o beginning -e -q -f '%p [%k] %s\n'
	assert_equal "$(grep null <<<"$output" | sort)" "$(printf '0 [] {"key":null,"n":31}\n1 [] {"key":null,"n":31}\n2 [] {"key":null,"n":31}')"
	# in each partition: every line before it is ahead of it, every line after it behind
	jq -se 'group_by(.p) | length == 3 and all(.[]; sort_by(.o) | map(.e.n) as $n
		| ($n | index(31)) as $i | all($n[:$i][]; . < 31) and all($n[$i + 1:][]; . > 31))' "$WORK/out"
}

@test "kafka-pub -k: a null key line to a topic that does not exist yet goes to its one partition" {
	printf '{"key":{"id":1},"n":1}\n{"key":null,"n":2}\n{"key":{"id":1},"n":3}\n' >"$WORK/in"
	run --separate-stderr kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(cat "$WORK/ack")" 3
	run kcat -b "$KAFKA_BROKERS" -C -t "$TOPIC" -o beginning -e -q -f '%p %s\n'
	assert_output "$(printf '0 {"key":{"id":1},"n":1}\n0 {"key":null,"n":2}\n0 {"key":{"id":1},"n":3}')"
}

# source MODE -> pg-cdc-tail | kafka-pub -> 3 partitions -> kafka-sub | pg-upsert
end_to_end() {
	local wh="wh_${BATS_TEST_NUMBER}" n
	kafka_topic "$TOPIC" 3
	dropdb --if-exists "$wh" 2>/dev/null
	createdb -T template0 "$wh"
	sql -d "$wh" -f "$TOP/tests/lib/fct-orders-soft.sql" >/dev/null
	prepare "$1" orders
	for s in before after; do
		[ "$s" = after ] && sql -d "$DB" -c "TRUNCATE orders"
		sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
			SELECT gen_random_uuid(), gen_random_uuid(), '$s', g, 'EUR', 'DE' FROM generate_series(1, 20) g"
		sql -d "$DB" -c "UPDATE orders SET status = '$s-2' WHERE amount_cents % 3 = 0"
	done
	set -o pipefail
	capture "$1" orders --ack="$WORK/tail.ack" | kafka-pub -t "$TOPIC" -k key --ack="$WORK/tail.ack"
	n=$(cat "$WORK/tail.ack")
	# 20 inserts and 6 updates before, the truncate, 20 and 6 after
	assert_equal "$n" 53
	by_partition >"$WORK/out"
	assert_equal "$(wc -l <"$WORK/out")" $((n + 2))
	run jq -r 'select(.e.op == "t") | .p' "$WORK/out"
	assert_equal "$(sort <<<"$output")" "$(printf '0\n1\n2')"
	# in each partition the truncate is behind every change before it, ahead of every one after
	jq -se 'group_by(.p) | all(.[]; sort_by(.o) | map(.e) as $e
		| ($e | map(.op) | index("t")) as $i | $e[$i].pos as $t
		| all($e[:$i][]; .pos < $t and .after.status[:6] == "before")
		and all($e[$i + 1:][]; .pos > $t and .after.status[:5] == "after"))' "$WORK/out"
	# kafka-sub hands each partition's copy on; pg-upsert applies them all
	kafka-sub -t "$TOPIC" -g "g_$BATS_TEST_NUMBER" -o beginning -e 2>/dev/null | tee "$WORK/sub" |
		pg-upsert -d "$wh" -t analytics.fct_orders --dlq="$WORK/dlq"
	assert_equal "$(wc -l <"$WORK/sub")" $((n + 2))
	assert_equal "$(grep -c '"op":"t"' "$WORK/sub")" 3
	assert_file_empty "$WORK/dlq"
	# the warehouse holds exactly the source's rows; the truncated ones are marked deleted
	sql -d "$DB" -c "SELECT id, status, amount_cents FROM orders ORDER BY id" >"$WORK/source"
	sql -d "$wh" -c "SELECT id, status, amount_cents FROM analytics.fct_orders
		WHERE NOT is_deleted ORDER BY id" >"$WORK/warehouse"
	assert_equal "$(wc -l <"$WORK/source")" 20
	run diff "$WORK/source" "$WORK/warehouse"
	assert_success
	assert_equal "$(sql -d "$wh" -c "SELECT count(*) FROM analytics.fct_orders
		WHERE is_deleted AND status LIKE 'before%'")" 20
	dropdb "$wh"
}

@test "trigger -> Kafka (3 partitions) -> warehouse: the truncate reaches every partition behind the rows before it, and the warehouse equals the source" {
	end_to_end trigger
}

@test "logical -> Kafka (3 partitions) -> warehouse: the truncate reaches every partition behind the rows before it, and the warehouse equals the source" {
	end_to_end logical
}

@test "logical, default identity: a key change of a row with a TOASTed column reaches the warehouse with its value" {
	local wh="wh_${BATS_TEST_NUMBER}"
	sql -d "$DB" -c "CREATE TABLE doc (id int PRIMARY KEY, n int, body text)" \
		-c "ALTER TABLE doc ALTER body SET STORAGE EXTERNAL"
	dropdb --if-exists "$wh" 2>/dev/null
	createdb -T template0 "$wh"
	sql -d "$wh" -c "CREATE TABLE doc (id int PRIMARY KEY, n int, body text,
		cdc_pos numeric(20, 0) NOT NULL, is_deleted boolean NOT NULL DEFAULT false)"
	prepare logical doc
	sql -d "$DB" -c "INSERT INTO doc SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 400) g"
	# the row reaches the warehouse in one run, its key changes in the next
	capture logical doc | pg-upsert -d "$wh" -t doc --dlq="$WORK/dlq"
	sql -d "$DB" -c "UPDATE doc SET id = 2 WHERE id = 1" -c "UPDATE doc SET n = 5 WHERE id = 2"
	capture logical doc | tee "$WORK/events" | pg-upsert -d "$wh" -t doc --dlq="$WORK/dlq"
	grep -q '"old_key":{"id":1},.*"unchanged":\["body"\]' "$WORK/events"
	assert_file_empty "$WORK/dlq"
	sql -d "$DB" -c "SELECT id, n, md5(body) FROM doc" >"$WORK/source"
	sql -d "$wh" -c "SELECT id, n, md5(body) FROM doc WHERE NOT is_deleted" >"$WORK/warehouse"
	run diff "$WORK/source" "$WORK/warehouse"
	assert_success
	# the old key is kept, marked deleted, with its values
	assert_equal "$(sql -d "$wh" -c "SELECT id, length(body), is_deleted FROM doc WHERE id = 1")" "1|12800|t"
}
