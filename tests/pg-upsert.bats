#!/usr/bin/env bats
# pg-upsert against a real PostgreSQL: idempotent, order-proof apply, dead
# letters, faults of the warehouse, generic and hostile tables, the ack file.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source warehouse
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
	ORDER_COLS="id, user_id, status, amount_cents, currency, country, created_at, updated_at, version"
}

teardown() {
	[ -n "${BG:-}" ] && kill -9 "$BG" 2>/dev/null
	# a test that stopped the warehouse and failed leaves it running again
	_as_pg "$PG_BINDIR/pg_ctl" -D "$PGTEST_DIR/data" status >/dev/null 2>&1 || pg_resume 3>&- 4>&- 5>&-
	[ -n "${LOCKER:-}" ] && kill "$LOCKER" 2>/dev/null
	exec 4>&- 5>&-
	return 0
}

# statuses: the status of every row, in id order, on one line
statuses() {
	sql -d "$WH" -c "SELECT string_agg(status, ' ' ORDER BY id) FROM analytics.fct_orders"
}

# stream SEED: 3000 changes by order-sim in a new source database, as the
# events pg-cdc-tail emits for them, in $WORK/events
stream() {
	new_source_db
	order-sim -d "$DB" -q --clients 4 --count 3000 --rate 0 \
		--update-ratio 0.4 --delete-ratio 0.1 --seed "$1"
	pg-cdc-tail -d "$DB" -t orders >"$WORK/events"
	[ "$(wc -l <"$WORK/events")" -eq 3000 ]
}

# dump DB: every column of every row of the fact table, in id order
dump() {
	sql -d "$1" -c "SELECT * FROM analytics.fct_orders ORDER BY id"
}

# source_rows / warehouse_rows: the source's orders and the warehouse's live
# orders, the same columns in the same order
source_rows() {
	sql -d "$DB" -c "SELECT $ORDER_COLS FROM orders ORDER BY id"
}

warehouse_rows() {
	sql -d "$WH" -c "SELECT $ORDER_COLS FROM analytics.fct_orders WHERE NOT is_deleted ORDER BY id"
}

# shuffle SEED: the lines of standard input in a random order fixed by SEED
shuffle() {
	awk -v seed="$1" 'BEGIN { srand(seed) } { printf "%.15f\t%s\n", rand(), $0 }' |
		sort -k1,1 | cut -f 2-
}

# signal_taken PID SIGNO: signal SIGNO is no longer pending for process PID,
# so its handler has run or is running (the kernel's pending masks, in hex)
signal_taken() {
	local bit=$((1 << ($2 - 1))) pend m
	pend=$(awk '/^(SigPnd|ShdPnd):/ { print $2 }' "/proc/$1/status") || return 1
	for m in $pend; do
		[ $((0x$m & bit)) -eq 0 ] || return 1
	done
}

# no_eof: $WORK/open, a named pipe that is held open for writing and never
# written, so a reader waits for input forever
no_eof() {
	mkfifo "$WORK/open"
	exec 5<>"$WORK/open"
}

# ---------------------------------------------------------------- interface

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr pg-upsert --help
	assert_success
	assert_line --index 0 "Usage: pg-upsert [OPTION]... -t TABLE"
	assert_line "  -t, --table=TABLE       target table of the first source table seen"
	assert_equal "$stderr" ""
}

@test "--help and --version exit 1 when standard output cannot be written" {
	run --separate-stderr sh -c 'pg-upsert --help >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "pg-upsert: cannot write the help: No space left on device"
	run --separate-stderr sh -c 'pg-upsert --version >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "pg-upsert: cannot write the version: No space left on device"
}

@test "--version prints the version" {
	run --separate-stderr pg-upsert -V
	assert_success
	assert_output --regexp '^pg-upsert [0-9]+\.[0-9]+\.[0-9]+$'
	assert_equal "$stderr" ""
}

@test "an unknown option is a usage error" {
	run --separate-stderr pg-upsert --bogus -t analytics.fct_orders
	assert_failure 2
	assert_output ""
	assert_equal "$stderr" 'pg-upsert: error: unrecognized option "--bogus"
Try "pg-upsert --help" for more information.'
}

@test "no table is a usage error" {
	run --separate-stderr pg-upsert -d "$WH"
	assert_failure 2
	assert_equal "$stderr" 'pg-upsert: error: no table given (use -t TABLE or --map SRC=DST)
Try "pg-upsert --help" for more information.'
}

@test "bad option values are usage errors" {
	local args want
	while IFS='|' read -r args want; do
		# shellcheck disable=SC2086
		run --separate-stderr pg-upsert -d "$WH" -t analytics.fct_orders $args
		assert_failure 2
		assert_equal "$stderr" "pg-upsert: error: $want
Try \"pg-upsert --help\" for more information."
	done <<-'EOF'
		--batch=0|--batch must be in range 1..1000000
		--batch=x|invalid value "x" for option --batch
		--linger=-1|--linger must be in range 0..3600000
		--delete=never|invalid value "never" for option --delete (soft or hard)
		--key=,id|invalid value ",id" for option --key
		--key=id,|invalid value "id," for option --key
		--pos-column=|--pos-column needs a column name
		--ack=|--ack needs a file name
		extra|unexpected argument "extra"
		--dlq|missing argument for option "--dlq"
	EOF
}

# ------------------------------------------------ fatal misconfiguration
# Each is found before any input is read: standard input stays open and
# silent, and pg-upsert still exits at once.

@test "an unknown table is a one-line error before reading input" {
	no_eof
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t nosuch <"$WORK/open"
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" 'pg-upsert: table "nosuch" does not exist'
}

@test "a table without a primary key is a one-line error before reading input" {
	sql -d "$WH" -c "CREATE TABLE nopk (id int, cdc_pos numeric(20,0), is_deleted boolean)"
	no_eof
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t nopk <"$WORK/open"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: table "public.nopk" has no primary key (give the key with --key)'
}

@test "a table without the guard column is a one-line error before reading input" {
	sql -d "$WH" -c "CREATE TABLE noguard (id int PRIMARY KEY, v text, is_deleted boolean)"
	no_eof
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t noguard <"$WORK/open"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: table "public.noguard" has no guard column "cdc_pos" (see --pos-column)'
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t analytics.fct_orders --pos-column=lsn <"$WORK/open"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: table "analytics.fct_orders" has no guard column "lsn" (see --pos-column)'
}

@test "soft deletes without a boolean is_deleted are a one-line error before reading input" {
	sql -d "$WH" -c "CREATE TABLE nodel (id int PRIMARY KEY, cdc_pos numeric(20,0));
		CREATE TABLE intdel (id int PRIMARY KEY, cdc_pos numeric(20,0), is_deleted int)"
	no_eof
	# asked for: without --delete such a table gets hard deletes (upsert-tombstones.bats)
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t nodel --delete=soft <"$WORK/open"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: table "public.nodel" has no boolean column "is_deleted" for soft deletes (add one or use --delete=hard)'
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t intdel --delete=soft <"$WORK/open"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: table "public.intdel" has no boolean column "is_deleted" for soft deletes (add one or use --delete=hard)'
}

@test "a missing or unfit --dlq-table is a one-line error before reading input" {
	no_eof
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t analytics.fct_orders \
		--dlq-table=analytics.nosuch <"$WORK/open"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: dead-letter table "analytics.nosuch" does not exist'
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t analytics.fct_orders \
		--dlq-table=analytics.fct_orders <"$WORK/open"
	assert_failure 1
	assert_equal "$stderr" 'pg-upsert: dead-letter table "analytics.fct_orders" needs the columns raw_value and error_message'
}

@test "an unwritable --dlq file is a one-line error before reading input" {
	no_eof
	run --separate-stderr timeout 10 pg-upsert -d "$WH" -t analytics.fct_orders \
		--dlq="$WORK/nodir/dlq" <"$WORK/open"
	assert_failure 1
	assert_equal "$stderr" "pg-upsert: cannot open dead-letter file \"$WORK/nodir/dlq\": No such file or directory"
}

@test "a refused connection is a one-line error" {
	no_eof
	run --separate-stderr timeout 10 pg-upsert -d "host=$WORK port=1" -t analytics.fct_orders <"$WORK/open"
	assert_failure 1
	assert_equal "${#stderr_lines[@]}" 1
	assert_regex "$stderr" '^pg-upsert: connection failed: .*No such file or directory'
}

@test "--key without a unique index on exactly those columns is a one-line error" {
	sql -d "$WH" -c "CREATE TABLE dim (code text NOT NULL, name text, cdc_pos numeric(20,0),
		is_deleted boolean NOT NULL DEFAULT false);
		CREATE UNIQUE INDEX ON dim (code, name); CREATE UNIQUE INDEX ON dim (name) WHERE code <> ''"
	no_eof
	local key
	for key in code name nosuch; do
		run --separate-stderr timeout 10 pg-upsert -d "$WH" -t dim --key="$key" <"$WORK/open"
		assert_failure 1
		assert_equal "$stderr" "pg-upsert: no unique index of table \"public.dim\" is on exactly the key columns \"$key\""
	done
}

# ---------------------------------------------------- idempotence and order

@test "the same stream applied twice leaves every row as one application did" {
	stream 11
	upsert <"$WORK/events"
	# xmin too: the replay does not even rewrite a row
	sql -d "$WH" -c "SELECT xmin, * FROM analytics.fct_orders ORDER BY id" >"$WORK/once"
	run --separate-stderr upsert <"$WORK/events"
	assert_success
	assert_equal "$stderr" ""
	sql -d "$WH" -c "SELECT xmin, * FROM analytics.fct_orders ORDER BY id" >"$WORK/twice"
	run diff "$WORK/once" "$WORK/twice"
	assert_success
	assert_output ""
}

@test "every event twice, shuffled, in batches of random sizes gives the same table" {
	local seed=12 sizes=(1 7 333 5000) start=1 n i=0 total
	stream "$seed"
	upsert <"$WORK/events"
	dump "$WH" >"$WORK/clean"
	dropdb --if-exists "${WH}_b" 2>/dev/null
	createdb -T wh_template "${WH}_b"
	cat "$WORK/events" "$WORK/events" | shuffle "$seed" >"$WORK/shuffled"
	total=$(wc -l <"$WORK/shuffled")
	# cut into runs of random length, each applied with its own --batch
	RANDOM=$seed
	while [ "$start" -le "$total" ]; do
		n=$((RANDOM % 1200 + 1))
		sed -n "${start},$((start + n - 1))p" "$WORK/shuffled" |
			pg-upsert -d "${WH}_b" -t analytics.fct_orders --batch="${sizes[i % 4]}"
		start=$((start + n))
		i=$((i + 1))
	done
	[ "$i" -ge 4 ]
	dump "${WH}_b" >"$WORK/shuffled.dump"
	run diff "$WORK/clean" "$WORK/shuffled.dump"
	assert_success
	assert_output ""
	dropdb "${WH}_b"
}

@test "the warehouse equals the source row for row" {
	stream 13
	run --separate-stderr upsert <"$WORK/events"
	assert_success
	assert_equal "$stderr" ""
	source_rows >"$WORK/source"
	warehouse_rows >"$WORK/warehouse"
	run diff "$WORK/source" "$WORK/warehouse"
	assert_success
	assert_output ""
	# the orders order-sim deleted are kept as deleted rows, not lost
	[ "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders WHERE is_deleted")" -gt 0 ]
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" \
		"$(grep -c '"op":"c"' "$WORK/events")"
}

@test "an older change after a newer one for the same key changes nothing" {
	order c 1 5 paid 200 | upsert
	order u 1 3 created 100 | upsert
	order c 1 1 created 100 | upsert
	assert_equal "$(state 1)" "paid|200|5|f"
	# the same event again is no change either
	order c 1 5 other 999 | upsert
	assert_equal "$(state 1)" "paid|200|5|f"
}

@test "duplicates of a key within one batch fold to the highest pos, whatever their order" {
	{
		order u 1 4 shipped 300
		order c 1 1 created 100
		order u 1 3 paid 200
		order c 2 2 created 50
		order u 2 2 created 50
	} | upsert --batch=5000
	assert_equal "$(state 1)" "shipped|300|4|f"
	assert_equal "$(state 2)" "created|50|2|f"
}

@test "a delete followed by a replayed older insert stays deleted with its values" {
	{
		order c 1 1 created 100
		order u 1 2 paid 200
		order d 1 3 paid 200
	} | upsert --batch=1
	assert_equal "$(state 1)" "paid|200|3|t"
	order c 1 1 created 100 | upsert
	order u 1 2 paid 200 | upsert
	assert_equal "$(state 1)" "paid|200|3|t"
}

@test "a delete that overtakes older updates leaves the row as the delete's old row" {
	{
		order c 1 1 created 100
		order d 1 3 shipped 300
		order u 1 2 paid 200
	} | upsert --batch=1
	assert_equal "$(state 1)" "shipped|300|3|t"
}

@test "a delete that arrives first leaves a deleted row that older changes cannot pass" {
	order d 1 3 paid 200 | upsert
	assert_equal "$(state 1)" "paid|200|3|t"
	{ order c 1 1 created 100; order u 1 2 paid 150; } | upsert
	assert_equal "$(state 1)" "paid|200|3|t"
}

@test "a delete without its old row marks the row deleted and keeps its values" {
	order c 1 1 paid 200 | upsert
	printf '{"op":"d","key":{"id":"%s"},"before":null,"after":null,"pos":2}\n' "$(uuid 1)" | upsert
	assert_equal "$(state 1)" "paid|200|2|t"
}

@test "a newer insert after a delete brings the row back" {
	{ order c 1 1 created 100; order d 1 2 created 100; } | upsert --batch=1
	order c 1 3 again 300 | upsert
	assert_equal "$(state 1)" "again|300|3|f"
}

# ------------------------------------------------------------ dead letters

@test "a line that is not JSON is dead-lettered and its neighbours commit" {
	{ order c 1 1 one; echo 'not json'; order c 2 2 two; } >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	run cat "$WORK/dlq"
	assert_output "$(dead_letter 'not JSON: unexpected character' 2 'not json')"
	assert_equal "$(statuses)" "one two"
}

@test "JSON that is not an event is dead-lettered with the reason" {
	local id k
	id=$(uuid 9)
	k="\"key\":{\"id\":\"$id\"}"
	cat >"$WORK/in" <<-EOF
		$(order c 1 1 one)
		[{"op":"c",$k,"after":{"id":"$id"},"pos":1}]
		"an event"
		{$k,"after":{"id":"$id"},"pos":1}
		{"op":"x",$k,"after":{"id":"$id"},"pos":1}
		{"op":null,$k,"after":{"id":"$id"},"pos":1}
		{"op":"c",$k,"pos":1}
		{"op":"u",$k,"after":[1],"pos":1}
		{"op":"c",$k,"after":{"id":"$id"},"pos":1,"ts_ms":"soon"}
		$(order c 2 2 two)
	EOF
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run cat "$WORK/dlq"
	assert_equal "${#lines[@]}" 8
	assert_line --index 0 "$(dead_letter 'not an event: not a JSON object' 2 "$(sed -n 2p "$WORK/in")")"
	assert_line --index 1 "$(dead_letter 'not an event: not a JSON object' 3 "$(sed -n 3p "$WORK/in")")"
	assert_line --index 2 "$(dead_letter 'not an event: "op" is not one of c, u, d, r, t, s' 4 "$(sed -n 4p "$WORK/in")")"
	assert_line --index 3 "$(dead_letter 'not an event: "op" is not one of c, u, d, r, t, s' 5 "$(sed -n 5p "$WORK/in")")"
	assert_line --index 4 "$(dead_letter 'not an event: "op" is not one of c, u, d, r, t, s' 6 "$(sed -n 6p "$WORK/in")")"
	assert_line --index 5 "$(dead_letter 'not an event: no "after" row' 7 "$(sed -n 7p "$WORK/in")")"
	assert_line --index 6 "$(dead_letter 'not an event: no "after" row' 8 "$(sed -n 8p "$WORK/in")")"
	assert_line --index 7 "$(dead_letter 'not an event: "ts_ms" is not an integer' 9 "$(sed -n 9p "$WORK/in")")"
	assert_equal "$(statuses)" "one two"
}

@test "a pos that is not an unsigned 64-bit integer is dead-lettered; 2^64-1 is kept exactly" {
	local id p
	id=$(uuid 9)
	{
		order c 1 18446744073709551615 max
		for p in -1 18446744073709551616 99999999999999999999 '"5"' 1.5 1e3 null '{}'; do
			printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s"},"pos":%s}\n' "$id" "$id" "$p"
		done
		printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s"}}\n' "$id" "$id"
		order c 2 0 zero
	} >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run cat "$WORK/dlq"
	assert_equal "${#lines[@]}" 9
	for p in $(seq 2 10); do
		assert_line --index $((p - 2)) \
			"$(dead_letter 'not an event: "pos" is not an unsigned 64-bit integer' "$p" "$(sed -n "${p}p" "$WORK/in")")"
	done
	assert_equal "$(state 1)" "max|100|18446744073709551615|f"
	assert_equal "$(state 2)" "zero|100|0|f"
}

@test "an event without a key object is dead-lettered" {
	local id
	id=$(uuid 9)
	{
		order c 1 1 one
		printf '{"op":"c","after":{"id":"%s"},"pos":1}\n' "$id"
		printf '{"op":"c","key":null,"after":{"id":"%s"},"pos":1}\n' "$id"
		printf '{"op":"c","key":"%s","after":{"id":"%s"},"pos":1}\n' "$id" "$id"
		order c 2 2 two
	} >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	run cat "$WORK/dlq"
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 "$(dead_letter 'missing key: no "key" object' 2 "$(sed -n 2p "$WORK/in")")"
	assert_line --index 1 "$(dead_letter 'missing key: no "key" object' 3 "$(sed -n 3p "$WORK/in")")"
	assert_line --index 2 "$(dead_letter 'missing key: no "key" object' 4 "$(sed -n 4p "$WORK/in")")"
	assert_equal "$(statuses)" "one two"
}

@test "an event whose key lacks a key column, or holds null for it, is dead-lettered" {
	local id
	id=$(uuid 9)
	{
		order c 1 1 one
		printf '{"op":"c","key":{},"after":{"id":"%s"},"pos":1}\n' "$id"
		printf '{"op":"c","key":{"user_id":"%s"},"after":{"id":"%s"},"pos":1}\n' "$id" "$id"
		printf '{"op":"d","key":{"id":null},"before":{"id":"%s"},"after":null,"pos":1}\n' "$id"
		order c 2 2 two
	} >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	run cat "$WORK/dlq"
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 "$(dead_letter 'missing key: no value for key column "id" in "key"' 2 "$(sed -n 2p "$WORK/in")")"
	assert_line --index 1 "$(dead_letter 'missing key: no value for key column "id" in "key"' 3 "$(sed -n 3p "$WORK/in")")"
	assert_line --index 2 "$(dead_letter 'missing key: no value for key column "id" in "key"' 4 "$(sed -n 4p "$WORK/in")")"
	assert_equal "$(statuses)" "one two"
}

@test "a line over --batch-bytes of 16 MiB is dead-lettered cut to 16 MiB and its neighbours commit" {
	{
		order c 1 1 one
		head -c 17M /dev/zero | tr '\0' x
		echo
		order c 2 2 two
	} >"$WORK/in"
	{
		printf '{"error":"line too long: more than 16777216 bytes (--batch-bytes)","input_line":2,"truncated":true,"line":"'
		head -c 16M /dev/zero | tr '\0' x
		printf '"}\n'
	} >"$WORK/expected"
	run --separate-stderr upsert --batch-bytes=16M --dlq="$WORK/dlq" --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	cmp "$WORK/expected" "$WORK/dlq"
	assert_equal "$(statuses)" "one two"
	assert_equal "$(cat "$WORK/ack")" 3
}

@test "a line that is not UTF-8 is dead-lettered with its bytes in base64" {
	{
		order c 1 1 one
		printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","status":"caf\xe9"},"pos":1}\n' "$(uuid 9)" "$(uuid 9)"
		order c 2 2 two
	} >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	run cat "$WORK/dlq"
	assert_output "{\"error\":\"not valid UTF-8\",\"input_line\":2,\"line_base64\":\"$(sed -n 2p "$WORK/in" | head -c -1 | base64 -w 0)\"}"
	assert_equal "$(statuses)" "one two"
}

@test "a value its column rejects is dead-lettered alone and the rest of its batch commits" {
	local n bad
	for n in $(seq 1 100); do
		case $n in
		17) printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","amount_cents":"abc"},"pos":%s}\n' "$(uuid $n)" "$(uuid $n)" "$n" ;;
		50) printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","user_id":"nope"},"pos":%s}\n' "$(uuid $n)" "$(uuid $n)" "$n" ;;
		99) printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","created_at":"not a time"},"pos":%s}\n' "$(uuid $n)" "$(uuid $n)" "$n" ;;
		*) order c "$n" "$n" "s$n" ;;
		esac
	done >"$WORK/in"
	run --separate-stderr upsert --batch=5000 --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run cat "$WORK/dlq"
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 "$(dead_letter 'invalid input syntax for type bigint: "abc"' 17 "$(sed -n 17p "$WORK/in")")"
	assert_line --index 1 "$(dead_letter 'invalid input syntax for type uuid: "nope"' 50 "$(sed -n 50p "$WORK/in")")"
	assert_line --index 2 "$(dead_letter 'invalid input syntax for type timestamp with time zone: "not a time"' 99 "$(sed -n 99p "$WORK/in")")"
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 97
	for bad in 17 50 99; do
		assert_equal "$(state $bad)" ""
	done
}

@test "a string the database cannot store (a NUL character) is dead-lettered alone" {
	{
		order c 1 1 one
		printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","status":"a\\u0000b"},"pos":1}\n' "$(uuid 9)" "$(uuid 9)"
		order c 2 2 two
	} >"$WORK/in"
	run --separate-stderr upsert --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	run cat "$WORK/dlq"
	assert_output "$(dead_letter 'unsupported Unicode escape sequence' 2 "$(sed -n 2p "$WORK/in")")"
	assert_equal "$(statuses)" "one two"
}

@test "--dlq-table keeps the original bytes and the error of every dead letter" {
	{
		order c 1 1 one
		echo 'not json'
		printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","status":"\xff\xfe"},"pos":1}\n' "$(uuid 9)" "$(uuid 9)"
		printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","amount_cents":"abc"},"pos":1}\n' "$(uuid 8)" "$(uuid 8)"
		order c 2 2 two
	} >"$WORK/in"
	run --separate-stderr upsert --dlq-table=analytics.failed_events --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run sql -d "$WH" -c "SELECT encode(raw_value, 'hex'), error_message FROM analytics.failed_events ORDER BY id"
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 "$(sed -n 2p "$WORK/in" | head -c -1 | xxd -p | tr -d '\n')|not JSON: unexpected character"
	assert_line --index 1 "$(sed -n 3p "$WORK/in" | head -c -1 | xxd -p | tr -d '\n')|not valid UTF-8"
	assert_line --index 2 "$(sed -n 4p "$WORK/in" | head -c -1 | xxd -p | tr -d '\n')|invalid input syntax for type bigint: \"abc\""
	assert_equal "$(wc -l <"$WORK/dlq")" 3
	assert_equal "$(statuses)" "one two"
}

@test "without --dlq dead letters go to standard error" {
	{ order c 1 1 one; echo '{}'; } >"$WORK/in"
	run --separate-stderr upsert <"$WORK/in"
	assert_success
	assert_output ""
	assert_equal "$stderr" "$(dead_letter 'not an event: "op" is not one of c, u, d, r, t, s' 2 '{}')"
}

@test "--dlq appends to an existing file" {
	echo 'earlier' >"$WORK/dlq"
	{ echo 'oops'; order c 1 1 one; } | upsert --dlq="$WORK/dlq"
	run cat "$WORK/dlq"
	assert_equal "${#lines[@]}" 2
	assert_line --index 0 'earlier'
	assert_line --index 1 "$(dead_letter 'not JSON: unexpected character' 1 'oops')"
}

@test "dead letters are numbered by input line across batches" {
	{
		order c 1 1 a
		order c 2 2 b
		order c 3 3 c
		echo 'bad four'
		order c 5 5 e
		echo 'bad six'
		echo ''
	} >"$WORK/in"
	run --separate-stderr upsert --batch=2 --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	run cat "$WORK/dlq"
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 "$(dead_letter 'not JSON: unexpected character' 4 'bad four')"
	assert_line --index 1 "$(dead_letter 'not JSON: unexpected character' 6 'bad six')"
	assert_line --index 2 "$(dead_letter 'not JSON: empty' 7 '')"
	assert_equal "$(statuses)" "a b c e"
}

# --------------------------------------------------------------- faults

@test "a warehouse restart mid-stream: exit 0 at EOF and nothing missing" {
	stream 21
	mkfifo "$WORK/in"
	pg-upsert -d "$WH" -t analytics.fct_orders --ack="$WORK/ack" --dlq="$WORK/dlq" \
		<"$WORK/in" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/in"
	head -n 1500 "$WORK/events" >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 1500 ]'
	pg_restart 3>&- 4>&-
	tail -n +1501 "$WORK/events" >&4
	exec 4>&-
	local rc=0
	wait "$BG" || rc=$?
	BG=
	[ "$rc" -eq 0 ]
	assert_equal "$(cat "$WORK/ack")" 3000
	assert_equal "$(cat "$WORK/dlq")" ""
	source_rows >"$WORK/source"
	warehouse_rows >"$WORK/warehouse"
	run diff "$WORK/source" "$WORK/warehouse"
	assert_success
	assert_output ""
}

@test "while the warehouse is down batches are retried with a warning, never dead-lettered" {
	mkfifo "$WORK/in"
	pg-upsert -d "$WH" -t analytics.fct_orders --ack="$WORK/ack" --dlq="$WORK/dlq" \
		--dlq-table=analytics.failed_events <"$WORK/in" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/in"
	order c 1 1 one >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 1 ]'
	pg_stop
	{ order c 2 2 two; order c 3 3 three; } >&4
	wait_for 10 '[ "$(grep -c "retrying in" "$WORK/err")" -ge 3 ]'
	assert_equal "$(cat "$WORK/ack")" 1
	pg_resume 3>&- 4>&-
	wait_for 20 '[ "$(cat "$WORK/ack")" = 3 ]'
	exec 4>&-
	local rc=0
	wait "$BG" || rc=$?
	BG=
	[ "$rc" -eq 0 ]
	assert_equal "$(statuses)" "one two three"
	assert_equal "$(cat "$WORK/dlq")" ""
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.failed_events")" 0
	run cat "$WORK/err"
	assert_line --index 0 --regexp '^pg-upsert: warning: (terminating connection due to administrator command|server closed the connection unexpectedly); retrying in 100 ms$'
	assert_line --index 2 "pg-upsert: warning: no connection; retrying in 200 ms"
	# nothing but the retries
	assert_equal "$(grep -Evc '^pg-upsert: (warning: [^;]+; retrying in [0-9]+ ms|connection failed: .*)$' "$WORK/err")" 0
}

@test "a lock timeout is retried, not dead-lettered" {
	order c 1 1 one | upsert
	mkfifo "$WORK/lock"
	sql -d "$WH" <"$WORK/lock" >/dev/null 2>&1 3>&- &
	LOCKER=$!
	exec 4>"$WORK/lock"
	echo "BEGIN; LOCK analytics.fct_orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT;" >&4
	exec 4>&-
	wait_for 10 '[ "$(sql -d "$WH" -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE c.relname = '"'fct_orders'"' AND l.mode = '"'AccessExclusiveLock'"' AND l.granted")" = 1 ]'
	run --separate-stderr env PGOPTIONS="-c lock_timeout=200" \
		pg-upsert -d "$WH" -t analytics.fct_orders --dlq="$WORK/dlq" < <(order u 1 2 paid)
	assert_success
	assert_output ""
	assert_equal "$(cat "$WORK/dlq")" ""
	assert_equal "$(state 1)" "paid|100|2|f"
	wait "$LOCKER"
	LOCKER=
	# the warning says why
	assert_equal "${stderr_lines[0]}" "pg-upsert: warning: canceling statement due to lock timeout; retrying in 100 ms"
}

# --------------------------------------------------------- values, tables

@test "numeric, bigint, text, timestamptz, jsonb, arrays and NULL arrive exactly" {
	new_source_db
	sql -d "$DB" -c "CREATE TABLE p (id bigint PRIMARY KEY, n numeric(38,10), i bigint,
		s text, t timestamptz, j jsonb, a int[], ta text[], f float8, z text);
		SELECT cdc.enable('p')" >/dev/null
	sql -d "$WH" -c "CREATE TABLE p (id bigint PRIMARY KEY, n numeric(38,10), i bigint,
		s text, t timestamptz, j jsonb, a int[], ta text[], f float8, z text,
		cdc_pos numeric(20,0), is_deleted boolean DEFAULT false, last_cdc_ts timestamptz)"
	sql -d "$DB" <<-'SQL'
		INSERT INTO p VALUES
		 (1, 1234567890123456789012345678.0123456789, 9223372036854775807,
		  E'quote" back\\ slash\nnew\tline \r é 日本 \U0001F600', '2026-11-26 12:34:56.789012+05:30',
		  '{"a": [1, 2.50, null], "big": 123456789012345678901234567890, "s": "x\\\"y", "n": null}',
		  '{1,NULL,3}', '{"x,y","",NULL,"q\"","NULL"}', 1.0e-300, NULL),
		 (-9223372036854775808, -0.0000000001, -9223372036854775808, '', 'infinity', '[]', '{}', '{}', 'NaN', 'z'),
		 (2, 0, 0, 'null', '-infinity', '"str"', NULL, '{a}', '-Infinity', E'\x01'),
		 (3, -9999999999999999999999999999.9999999999, 1, 'x', '1999-12-31 23:59:59.999999-12', '0.1', '{-2147483648}', '{"{}"}', 0, '');
		UPDATE p SET s = s || E'\n2nd', n = n - 0.0000000001 WHERE id = 1;
	SQL
	pg-cdc-tail -d "$DB" -t p >"$WORK/events"
	run --separate-stderr pg-upsert -d "$WH" -t p <"$WORK/events"
	assert_success
	assert_equal "$stderr" ""
	local q="SELECT id, c, v FROM p, LATERAL (VALUES ('n', n::text), ('i', i::text), ('s', s),
		('t', t::text), ('j', j::text), ('a', a::text), ('ta', ta::text), ('f', f::text),
		('z', z)) AS x(c, v) ORDER BY id, c"
	sql -d "$DB" -c "$q" >"$WORK/source"
	sql -d "$WH" -c "$q" >"$WORK/warehouse"
	[ "$(wc -l <"$WORK/source")" -ge 36 ]
	run diff "$WORK/source" "$WORK/warehouse"
	assert_success
	assert_output ""
	# NULL stays NULL, not a string or an empty value
	assert_equal "$(sql -d "$WH" -c "SELECT z IS NULL, a IS NULL FROM p WHERE id IN (1, 2) ORDER BY id")" "t|f
f|t"
}

@test "a table with a composite primary key" {
	sql -d "$WH" -c "CREATE TABLE lines (order_id int, line int, sku text, qty int,
		cdc_pos numeric(20,0), is_deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (order_id, line))"
	cat >"$WORK/in" <<-'EOF'
		{"op":"c","key":{"order_id":1,"line":1},"after":{"order_id":1,"line":1,"sku":"a","qty":1},"pos":1}
		{"op":"c","key":{"order_id":1,"line":2},"after":{"order_id":1,"line":2,"sku":"b","qty":1},"pos":2}
		{"op":"c","key":{"order_id":2,"line":1},"after":{"order_id":2,"line":1,"sku":"c","qty":1},"pos":3}
		{"op":"u","key":{"order_id":1,"line":1},"after":{"order_id":1,"line":1,"sku":"a","qty":5},"pos":4}
		{"op":"d","key":{"order_id":1,"line":2},"before":{"order_id":1,"line":2,"sku":"b","qty":1},"after":null,"pos":5}
		{"op":"u","key":{"order_id":1,"line":1},"after":{"order_id":1,"line":1,"sku":"a","qty":2},"pos":3}
		{"op":"c","key":{"order_id":1},"after":{"order_id":1,"line":3,"sku":"d","qty":1},"pos":6}
	EOF
	run --separate-stderr pg-upsert -d "$WH" -t lines --batch=2 <"$WORK/in"
	assert_success
	assert_equal "$stderr" "$(dead_letter 'missing key: no value for key column "line" in "key"' 7 "$(sed -n 7p "$WORK/in")")"
	run sql -d "$WH" -c "SELECT order_id, line, sku, qty, cdc_pos, is_deleted FROM lines ORDER BY 1, 2"
	assert_output "1|1|a|5|4|f
1|2|b|1|5|t
2|1|c|1|3|f"
}

@test "--key applies to a table keyed by a unique index instead of a primary key" {
	sql -d "$WH" -c "CREATE TABLE dim (code text NOT NULL, region text NOT NULL, name text,
		cdc_pos numeric(20,0), is_deleted boolean NOT NULL DEFAULT false);
		CREATE UNIQUE INDEX ON dim (region, code)"
	cat >"$WORK/in" <<-'EOF'
		{"op":"c","key":{"code":"A","region":"eu"},"after":{"code":"A","region":"eu","name":"first"},"pos":1}
		{"op":"c","key":{"code":"A","region":"us"},"after":{"code":"A","region":"us","name":"other"},"pos":2}
		{"op":"u","key":{"code":"A","region":"eu"},"after":{"code":"A","region":"eu","name":"second"},"pos":3}
		{"op":"u","key":{"code":"A","region":"eu"},"after":{"code":"A","region":"eu","name":"stale"},"pos":2}
	EOF
	run --separate-stderr pg-upsert -d "$WH" -t dim --key=code,region <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	run sql -d "$WH" -c "SELECT code, region, name, cdc_pos FROM dim ORDER BY region"
	assert_output "A|eu|second|3
A|us|other|2"
}

@test "--pos-column names another guard column" {
	sql -d "$WH" -c "CREATE TABLE g (id int PRIMARY KEY, v text, lsn numeric(20,0), is_deleted boolean)"
	{
		echo '{"op":"c","key":{"id":1},"after":{"id":1,"v":"new"},"pos":9}'
		echo '{"op":"u","key":{"id":1},"after":{"id":1,"v":"old"},"pos":4}'
	} | pg-upsert -d "$WH" -t g --pos-column=lsn --batch=1
	assert_equal "$(sql -d "$WH" -c "SELECT v, lsn, is_deleted FROM g")" "new|9|f"
}

@test "fields the table has no column for go to its extra jsonb column" {
	local id
	id=$(uuid 1)
	{
		printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","status":"a","coupon":"X1","gift":true,"n":12345678901234567890.5},"pos":1}\n' "$id" "$id"
		order c 2 2 plain
	} | upsert
	assert_equal "$(sql -d "$WH" -c "SELECT status, extra FROM analytics.fct_orders WHERE id = '$id'")" \
		'a|{"n": 12345678901234567890.5, "gift": true, "coupon": "X1"}'
	assert_equal "$(sql -d "$WH" -c "SELECT extra IS NULL FROM analytics.fct_orders WHERE id = '$(uuid 2)'")" t
}

@test "without an extra column, fields the table has no column for are left out" {
	sql -d "$WH" -c "CREATE TABLE narrow (id int PRIMARY KEY, v text, cdc_pos numeric(20,0), is_deleted boolean)"
	run --separate-stderr pg-upsert -d "$WH" -t narrow <<-'EOF'
		{"op":"c","key":{"id":1},"after":{"id":1,"v":"x","unknown":{"deep":[1]},"extra":"no"},"pos":1}
	EOF
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT * FROM narrow")" "1|x|1|f"
}

@test "last_cdc_ts is the event's ts_ms, or the time of applying without one" {
	order c 1 1 one | upsert
	printf '{"op":"c","key":{"id":"%s"},"after":{"id":"%s","status":"two"},"pos":2}\n' "$(uuid 2)" "$(uuid 2)" | upsert
	assert_equal "$(sql -d "$WH" -c "SELECT last_cdc_ts = '2025-11-26 09:40:00.123+00'
		FROM analytics.fct_orders WHERE id = '$(uuid 1)'")" t
	assert_equal "$(sql -d "$WH" -c "SELECT last_cdc_ts BETWEEN now() - interval '1 minute' AND now()
		FROM analytics.fct_orders WHERE id = '$(uuid 2)'")" t
}

@test "--delete=hard removes the row" {
	{ order c 1 1 one; order c 2 2 two; order d 1 3 one; } | upsert --delete=hard --batch=1
	assert_equal "$(statuses)" "two"
	# a table without is_deleted is fine for hard deletes
	sql -d "$WH" -c "CREATE TABLE h (id int PRIMARY KEY, cdc_pos numeric(20,0))"
	printf '%s\n' '{"op":"c","key":{"id":1},"after":{"id":1},"pos":1}' \
		'{"op":"c","key":{"id":2},"after":{"id":2},"pos":2}' \
		'{"op":"d","key":{"id":2},"before":{"id":2},"after":null,"pos":3}' |
		pg-upsert -d "$WH" -t h --delete=hard
	assert_equal "$(sql -d "$WH" -c "SELECT id, cdc_pos FROM h")" "1|1"
}

@test "--delete=hard: an older delete does not remove a newer row" {
	order c 1 5 newer | upsert --delete=hard
	order d 1 3 older | upsert --delete=hard
	assert_equal "$(state 1)" "newer|100|5|f"
	# nor in the same batch
	{ order u 1 7 newest; order d 1 6 newer; } | upsert --delete=hard
	assert_equal "$(state 1)" "newest|100|7|f"
}

@test "a hostile table or column name is quoted, not executed" {
	sql -d "$WH" <<-'SQL'
		CREATE TABLE victim (id int);
		CREATE TABLE "x""; DROP TABLE victim; --" (id int PRIMARY KEY, "a""b" text,
			"c\d; DROP TABLE victim" text, "Mixed Case" text, cdc_pos numeric(20,0),
			is_deleted boolean NOT NULL DEFAULT false);
	SQL
	run --separate-stderr pg-upsert -d "$WH" -t 'public."x""; DROP TABLE victim; --"' <<-'EOF'
		{"op":"c","key":{"id":1},"after":{"id":1,"a\"b":"q\"uote","c\\d; DROP TABLE victim":"back\\slash","Mixed Case":"M"},"pos":1}
		{"op":"d","key":{"id":2},"before":{"id":2,"a\"b":"gone"},"after":null,"pos":2}
	EOF
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT to_regclass('victim') IS NOT NULL")" t
	run sql -d "$WH" -c 'SELECT * FROM "x""; DROP TABLE victim; --" ORDER BY id'
	assert_output '1|q"uote|back\slash|M|1|f
2|gone|||2|t'
}

@test "key columns whose names need escaping in JSON are matched" {
	sql -d "$WH" -c 'CREATE TABLE "k""ey" ("a""b" int, "c\d" text, v text, cdc_pos numeric(20,0),
		is_deleted boolean NOT NULL DEFAULT false, PRIMARY KEY ("a""b", "c\d"))'
	run --separate-stderr pg-upsert -d "$WH" -t '"k""ey"' <<-'EOF'
		{"op":"c","key":{"a\"b":1,"c\\d":"k"},"after":{"a\"b":1,"c\\d":"k","v":"x"},"pos":1}
	EOF
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c 'SELECT * FROM "k""ey"')" '1|k|x|1|f'
}

@test "--key takes column names that need quoting" {
	sql -d "$WH" -c 'CREATE TABLE q (sk int, "a""b" int NOT NULL, "c\d" text NOT NULL, v text,
		cdc_pos numeric(20,0), is_deleted boolean NOT NULL DEFAULT false);
		CREATE UNIQUE INDEX ON q ("a""b", "c\d")'
	no_eof
	run --separate-stderr timeout 2 pg-upsert -d "$WH" -t q --key='a"b,c\d' <"$WORK/open"
	# it reads input: it got past the key check, and the timeout ends it
	assert_equal "$stderr" ""
	assert_failure 124
}

# ------------------------------------------------------ ack file, signals

@test "--ack ends with the count of input lines, dead letters included" {
	{
		order c 1 1 one
		echo 'bad'
		order c 2 2 two
		order c 1 0 stale
		printf '\xff\n'
	} >"$WORK/in"
	run --separate-stderr upsert --batch=2 --ack="$WORK/ack" --dlq="$WORK/dlq" <"$WORK/in"
	assert_success
	assert_equal "$(cat "$WORK/ack")" 5
	assert_equal "$(wc -l <"$WORK/dlq")" 2
	# a last line without a newline may be cut short: it is left for the writer to send again
	{ order c 3 3 three; printf '%s' "$(order c 4 4 four)"; } | upsert --ack="$WORK/ack" 2>/dev/null
	assert_equal "$(cat "$WORK/ack")" 1
	assert_equal "$(statuses)" "one two three"
}

@test "a partial batch commits and is acked after --linger ms without waiting for more" {
	mkfifo "$WORK/in"
	pg-upsert -d "$WH" -t analytics.fct_orders --linger=100 --ack="$WORK/ack" <"$WORK/in" 3>&- &
	BG=$!
	exec 4>"$WORK/in"
	{ order c 1 1 one; order c 2 2 two; } >&4
	wait_for 5 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 2 ]'
	assert_equal "$(statuses)" "one two"
	exec 4>&-
	wait "$BG"
	BG=
}

@test "SIGTERM mid-stream: exit 0, what was read is committed and acked" {
	mkfifo "$WORK/in"
	pg-upsert -d "$WH" -t analytics.fct_orders --batch=100 --linger=600000 --ack="$WORK/ack" \
		<"$WORK/in" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/in"
	local n
	for n in $(seq 1 130); do order c "$n" "$n" "s$n"; done >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 100 ]'
	# the other 30 wait in a batch that only a full batch or SIGTERM ends
	sleep 0.5
	assert_equal "$(cat "$WORK/ack")" 100
	kill -TERM "$BG"
	local rc=0
	wait "$BG" || rc=$?
	BG=
	[ "$rc" -eq 0 ]
	assert_equal "$(cat "$WORK/ack")" 130
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 130
	assert_equal "$(cat "$WORK/err")" ""
}

@test "a second SIGTERM while the warehouse is down gives up: exit 1, nothing acked" {
	mkfifo "$WORK/in"
	pg-upsert -d "$WH" -t analytics.fct_orders --ack="$WORK/ack" <"$WORK/in" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/in"
	order c 1 1 one >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 1 ]'
	pg_stop
	# in one write (cat's; bash's printf flushes at each newline), so that
	# a slow machine cannot split the batch at --linger
	{ order c 2 2 two; order c 3 3 three; } >"$WORK/both"
	cat "$WORK/both" >&4
	wait_for 10 'grep -q "retrying in" "$WORK/err"'
	kill -TERM "$BG"
	# two signals sent before the process runs would merge into one
	wait_for 10 "signal_taken $BG 15"
	kill -TERM "$BG"
	local rc=0
	wait "$BG" || rc=$?
	BG=
	pg_resume 3>&- 4>&-
	[ "$rc" -eq 1 ]
	assert_equal "$(tail -n 1 "$WORK/err")" "pg-upsert: second signal: 2 lines not applied"
	assert_equal "$(cat "$WORK/ack")" 1
	assert_equal "$(statuses)" "one"
}

# --------------------------------------------------------------- man page

@test "the man page passes mandoc -T lint" {
	run mandoc -T lint -W warning "$TOP/man/pg-upsert.1"
	assert_success
	assert_output ''
}

@test "the man page documents every option of --help" {
	local opt
	mandoc -T ascii "$TOP/man/pg-upsert.1" | col -bx |
		sed -n '/^OPTIONS/,/^ENVIRONMENT/p' >"$WORK/options"
	for opt in $(pg-upsert --help | grep -o -- '--[a-z-]*' | sort -u); do
		grep -Eq -- "^     (-[a-zA-Z], )?$opt([= ]|\$)" "$WORK/options" || fail "$opt is not in OPTIONS"
	done
}

@test "the man page examples run" {
	local script
	script=$(mandoc -T ascii "$TOP/man/pg-upsert.1" | col -bx |
		sed -n '/^EXAMPLES/,/^SEE ALSO/s/^           \(.*[^ ].*\)$/\1/p')
	[ -n "$script" ]
	# a source database "shop" with changes, and Kafka for the last example
	dropdb --if-exists shop 2>/dev/null
	createdb -T src_template shop
	order-sim -d dbname=shop -q --clients 2 --count 500 --rate 0 --delete-ratio 0.1 --seed 5
	mkfifo "$WORK/addr"
	kafka-mock --topic=orders_cdc:2 >"$WORK/addr" 2>/dev/null 3>&- &
	BG=$!
	read -r KAFKA_BROKERS <"$WORK/addr"
	export KAFKA_BROKERS
	# the page's warehouse: sql/warehouse.sql, the original's shape
	dropdb --if-exists orig 2>/dev/null
	createdb -T template0 orig
	sql -d orig -f "$TOP/sql/warehouse.sql" >/dev/null
	mkdir "$WORK/ex"
	cd "$WORK/ex"
	run --separate-stderr env PGDATABASE=orig timeout 60 sh -ec "$script" 3>&-
	assert_success
	kill "$BG"
	wait "$BG" || true
	BG=
	# what the psql of the second example printed
	assert_output 'not JSON: unexpected character
not an event: "pos" is not an unsigned 64-bit integer'
	assert_equal "$(wc -l <"$WORK/ex/dead.ndjson")" 2
	assert_equal "$(cat "$WORK/ex/upsert.ack")" "$(wc -l <"$WORK/ex/changes.ndjson")"
	# order_id is the source's id; deleted orders are gone, each with a tombstone
	sql -d shop -c "SELECT $ORDER_COLS FROM orders ORDER BY id" >"$WORK/source"
	sql -d orig -c "SELECT ${ORDER_COLS/#id,/order_id,} FROM analytics.fct_orders ORDER BY order_id" >"$WORK/warehouse"
	run diff "$WORK/source" "$WORK/warehouse"
	assert_success
	assert_output ""
	assert_equal "$(sql -d orig -c "SELECT count(*) FROM analytics.cdc_tombstones")" \
		"$(sql -d shop -c "SELECT count(DISTINCT key::text) FROM orders_cdc_log WHERE op = 'd'")"
	dropdb shop
	dropdb orig
}

# doc_event OP POS N BODY|-: an event of doc 1; "-" names body unchanged, as logical capture does
doc_event() {
	if [ "$4" = - ]; then
		printf '{"op":"%s","table":"public.doc","key":{"id":1},"before":null,"after":{"id":1,"n":%s},"unchanged":["body"],"pos":%s}\n' "$1" "$3" "$2"
	else
		printf '{"op":"%s","table":"public.doc","key":{"id":1},"before":null,"after":{"id":1,"n":%s,"body":"%s"},"pos":%s}\n' "$1" "$3" "$4" "$2"
	fi
}

@test "columns an event names \"unchanged\" keep their value, from the table or an earlier event of the batch" {
	sql -d "$WH" -c "CREATE TABLE doc (id int PRIMARY KEY, n int, body text, cdc_pos numeric(20,0), is_deleted boolean)"
	# across batches: the value in the table stays
	{ doc_event c 1 0 first; } | pg-upsert -d "$WH" -t doc
	{ doc_event u 2 1 -; } | pg-upsert -d "$WH" -t doc
	assert_equal "$(sql -d "$WH" -c "SELECT n, body, cdc_pos FROM doc")" "1|first|2"
	# in one batch: the latest earlier change of the key gives it, whatever the order of lines
	{ doc_event u 4 3 -; doc_event u 3 2 second; doc_event u 5 4 -; } | pg-upsert -d "$WH" -t doc
	assert_equal "$(sql -d "$WH" -c "SELECT n, body, cdc_pos FROM doc")" "4|second|5"
	# an old change replayed never wins, with or without unchanged columns
	{ doc_event u 3 2 second; doc_event u 2 1 -; doc_event u 1 0 first; } | pg-upsert -d "$WH" -t doc
	assert_equal "$(sql -d "$WH" -c "SELECT n, body, cdc_pos FROM doc")" "4|second|5"
	run --separate-stderr pg-upsert -d "$WH" -t doc <<<'{"op":"u","key":{"id":1},"after":{"id":1},"unchanged":"body","pos":9}'
	assert_success
	assert_equal "$(sql -d "$WH" -c "SELECT cdc_pos FROM doc")" 5
	[[ "$stderr" == *"not an event: \\\"unchanged\\\" is not an array of column names"* ]]
}

@test "what the ack file counts survives a crash of the warehouse, even with synchronous_commit=off" {
	# the test cluster commits asynchronously unless pg-upsert asks for more
	# what "order c N N created" writes, for N in 1..20000, in one process
	seq 20000 | awk '{
		id = sprintf("00000000-0000-0000-0000-%012d", $1)
		printf "{\"op\":\"c\",\"table\":\"public.orders\",\"key\":{\"id\":\"%s\"},\"before\":null,\"after\":{\"id\":\"%s\",\"status\":\"created\",\"amount_cents\":100},\"pos\":%d,\"txid\":7,\"ts_ms\":1764150000123}\n", id, id, $1
	}' >"$WORK/in"
	[ "$(sed -n 20000p "$WORK/in")" = "$(order c 20000 20000 created)" ]
	# input that does not end: pg-upsert is still running when the warehouse dies
	no_eof
	pg-upsert -d "$WH" -t analytics.fct_orders --ack="$WORK/ack" <"$WORK/open" 2>/dev/null 3>&- &
	BG=$!
	cat "$WORK/in" >"$WORK/open"
	wait_for 30 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 20000 ]'
	pg_kill
	pg_resume
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 20000
}
