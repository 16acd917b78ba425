#!/usr/bin/env bats
# Files and secrets: dead-letter files no other user can redirect or read,
# Kafka properties and passwords never shown in messages.  PostgreSQL is real;
# the Kafka tools are run against a closed port (nothing here needs a broker).

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
	WORK=$BATS_TEST_TMPDIR
	STATE=$WORK/state
	mkdir -m 700 "$STATE"
	SECRET=Sup3rS3cret
	WARN='warning: a password on the command line is visible to other users (ps); use PGPASSWORD, ~/.pgpass or a service file'
	TRY_PUB='Try "kafka-pub --help" for more information.'
}

# pub [OPTION]...: kafka-pub on a closed port; a line that is not JSON is
# dead-lettered without a broker
pub() {
	kafka-pub -b 127.0.0.1:1 -X message.timeout.ms=500 -t t "$@"
}

# sub [OPTION]...: kafka-sub on a closed port (options are checked before it connects)
sub() {
	timeout 20 kafka-sub -b 127.0.0.1:1 -t t -g g -e "$@"
}

# upsert [OPTION]...: pg-upsert into a fresh warehouse of this test
upsert() {
	local wh="wh_${BATS_TEST_NUMBER}"
	dropdb --if-exists "$wh" 2>/dev/null
	createdb -T wh_template "$wh"
	pg-upsert -d "$wh" -t analytics.fct_orders "$@"
}

# fails_with STATUS MESSAGE: the last run failed with STATUS, printed nothing
# on stdout and exactly MESSAGE on stderr
fails_with() {
	assert_equal "$status" "$1"
	assert_equal "$output" ""
	assert_equal "$stderr" "$2"
}

@test "a symbolic link as --dlq is refused and its target left untouched" {
	printf 'keep\n' >"$WORK/victim"
	ln -s "$WORK/victim" "$STATE/dlq"
	run --separate-stderr pub --dlq="$STATE/dlq" <<<'not json'
	fails_with 1 "kafka-pub: refusing dead-letter file \"$STATE/dlq\": it is a symbolic link"
	run --separate-stderr sub --dlq="$STATE/dlq"
	fails_with 1 "kafka-sub: refusing dead-letter file \"$STATE/dlq\": it is a symbolic link"
	run --separate-stderr upsert --dlq="$STATE/dlq" <<<'not json'
	fails_with 1 "pg-upsert: refusing dead-letter file \"$STATE/dlq\": it is a symbolic link"
	assert_equal "$(cat "$WORK/victim")" keep
	assert_equal "$(stat -c %s "$WORK/victim")" 5
}

@test "a new dead-letter file is created mode 0600 whatever the umask" {
	(umask 000 && pub --dlq="$STATE/pub.dlq" <<<'not json')
	(umask 022 && upsert --dlq="$STATE/upsert.dlq" <<<'not json')
	assert_equal "$(stat -c %a "$STATE/pub.dlq")" 600
	assert_equal "$(stat -c %a "$STATE/upsert.dlq")" 600
	assert_equal "$(grep -c '"line":"not json"' "$STATE/pub.dlq" "$STATE/upsert.dlq")" \
		"$STATE/pub.dlq:1
$STATE/upsert.dlq:1"
}

@test "--dlq in a directory group or others may write is refused and nothing is created" {
	local mode
	for mode in 777 770 1777; do
		chmod "$mode" "$STATE"
		run --separate-stderr pub --dlq="$STATE/dlq" <<<'not json'
		fails_with 1 "kafka-pub: refusing dead-letter file \"$STATE/dlq\": directory \"$STATE\" is writable by group or others"
		run --separate-stderr sub --dlq="$STATE/dlq"
		fails_with 1 "kafka-sub: refusing dead-letter file \"$STATE/dlq\": directory \"$STATE\" is writable by group or others"
		run --separate-stderr upsert --dlq="$STATE/dlq" <<<'not json'
		fails_with 1 "pg-upsert: refusing dead-letter file \"$STATE/dlq\": directory \"$STATE\" is writable by group or others"
		assert_file_not_exists "$STATE/dlq"
	done
}

@test "--dlq in a directory owned by another user is refused" {
	chmod 755 "$STATE"
	chown postgres "$STATE"
	run --separate-stderr pub --dlq="$STATE/dlq" <<<'not json'
	fails_with 1 "kafka-pub: refusing dead-letter file \"$STATE/dlq\": directory \"$STATE\" is owned by another user"
	run --separate-stderr upsert --dlq="$STATE/dlq" <<<'not json'
	fails_with 1 "pg-upsert: refusing dead-letter file \"$STATE/dlq\": directory \"$STATE\" is owned by another user"
	assert_file_not_exists "$STATE/dlq"
}

@test "--dlq=/dev/stderr is standard error itself: a dead letter is not overwritten by later messages" {
	# 2> (not 2>>): reopening /dev/stderr would write at an offset of its own
	upsert -v --dlq=/dev/stderr <<<'not json' 2>"$WORK/err"
	assert_equal "$(grep -c '^{"error":"not JSON: unexpected character","input_line":1,"line":"not json"}$' "$WORK/err")" 1
	assert_equal "$(tail -n 1 "$WORK/err")" 'pg-upsert: debug: 1 lines: 0 applied, 1 dead-lettered'
	# /dev/fd/N and /dev/null: the shell's descriptor, a device
	pub --dlq=/dev/fd/3 <<<'not json' 3>"$WORK/fd3"
	assert_equal "$(cat "$WORK/fd3")" '{"error":"not JSON: unexpected character","input_line":1,"line":"not json"}'
	run --separate-stderr pub -q --dlq=/dev/null <<<'not json'
	fails_with 0 ""
	run --separate-stderr pub --dlq=/dev/fd/9 <<<'not json'
	fails_with 1 'kafka-pub: cannot open dead-letter file "/dev/fd/9": Bad file descriptor'
}

@test "a mistyped -X property names the key, never the value" {
	local tool
	for tool in kafka-pub kafka-sub; do
		run --separate-stderr "$tool" -t t -X sasl.passwd="$SECRET"
		fails_with 2 "$tool: error: -X sasl.passwd: no such configuration property
Try \"$tool --help\" for more information."
		run --separate-stderr "$tool" -t t -X sasl.password:"$SECRET"
		fails_with 2 "$tool: error: -X: expected KEY=VALUE
Try \"$tool --help\" for more information."
	done
}

@test "a refused -X value is never shown, even where librdkafka quotes it" {
	run --separate-stderr kafka-pub -t t -X acks="$SECRET"
	fails_with 2 "kafka-pub: error: -X acks: Invalid value for configuration property \"request.required.acks\"
$TRY_PUB"
	run --separate-stderr kafka-pub -t t -X compression.codec="$SECRET"
	fails_with 2 "kafka-pub: error: -X compression.codec: invalid value
$TRY_PUB"
	run --separate-stderr kafka-sub -t t -X debug=broker,"$SECRET"
	fails_with 2 "kafka-sub: error: -X debug: invalid value
Try \"kafka-sub --help\" for more information."
	run --separate-stderr kafka-pub -t t -X batch.size=0x0
	fails_with 2 "kafka-pub: error: -X batch.size: invalid value (outside allowed range 1..2147483647)
$TRY_PUB"
}

@test "a bad line in -F FILE names the file, the line and the key, never the value" {
	printf '# kafka\nacks=all\nsasl.passwd=%s\n' "$SECRET" >"$WORK/a.conf"
	printf 'partitioner=%s\n' "$SECRET" >"$WORK/b.conf"
	printf '\nssl.key.password %s\n' "$SECRET" >"$WORK/c.conf"
	run --separate-stderr kafka-pub -t t -F "$WORK/a.conf"
	fails_with 2 "kafka-pub: error: $WORK/a.conf:3: sasl.passwd: no such configuration property
$TRY_PUB"
	run --separate-stderr kafka-pub -t t -F "$WORK/b.conf"
	fails_with 2 "kafka-pub: error: $WORK/b.conf:1: partitioner: invalid value
$TRY_PUB"
	run --separate-stderr kafka-sub -t t -F "$WORK/c.conf"
	fails_with 2 "kafka-sub: error: $WORK/c.conf:2: expected KEY=VALUE
Try \"kafka-sub --help\" for more information."
}

@test "pg-upsert: a password in -d warns once, in keyword and URI form, and the rows apply" {
	local wh="wh_${BATS_TEST_NUMBER}" ev
	createdb -T wh_template "$wh"
	ev='{"op":"c","table":"public.orders","key":{"id":"00000000-0000-0000-0000-000000000001"},"before":null,"after":{"id":"00000000-0000-0000-0000-000000000001","status":"new"},"pos":1,"txid":7,"ts_ms":1764150000123}'
	run --separate-stderr pg-upsert -d "dbname=$wh password=$SECRET" -t analytics.fct_orders <<<"$ev"
	fails_with 0 "pg-upsert: $WARN"
	run --separate-stderr pg-upsert -d "postgresql://postgres:$SECRET@/$wh?host=$PGHOST" \
		-t analytics.fct_orders <<<"$ev"
	fails_with 0 "pg-upsert: $WARN"
	assert_equal "$(sql -d "$wh" -c "SELECT status FROM analytics.fct_orders")" new
	# no password, or a database name alone: no warning
	run --separate-stderr pg-upsert -d "dbname=$wh user=postgres" -t analytics.fct_orders <<<"$ev"
	fails_with 0 ""
	run --separate-stderr pg-upsert -d "$wh" -t analytics.fct_orders <<<"$ev"
	fails_with 0 ""
}

@test "pg-cdc-tail: a password in -d warns once, in trigger and logical mode" {
	new_source_db
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'new', 1, 'EUR', 'DE')"
	run --separate-stderr pg-cdc-tail -d "dbname=$DB password=$SECRET" -t orders
	assert_success
	assert_equal "${#lines[@]}" 1
	assert_equal "$stderr" "pg-cdc-tail: $WARN"
	run --separate-stderr pg-cdc-tail -d "postgres://postgres:$SECRET@/$DB?host=$PGHOST" \
		--mode=logical --slot=s_secret --publication=pub --create-slot --snapshot -t orders
	assert_success
	assert_equal "${#lines[@]}" 1
	# then what --create-slot did
	assert_equal "${stderr_lines[0]}" "pg-cdc-tail: $WARN"
	assert_equal "$(grep -c -e warning -e "$SECRET" <<<"$stderr")" 1
	sql -c "SELECT pg_drop_replication_slot('s_secret')" >/dev/null
}

@test "order-sim: a password in -d warns once for all its clients" {
	new_source_db
	run --separate-stderr order-sim -q -d "dbname=$DB password=$SECRET" --clients=4 --count=20 --rate=0
	fails_with 0 "order-sim: $WARN"
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) >= 1 FROM orders")" t
}

@test "a malformed -d does not show the pieces libpq quotes from it" {
	run --separate-stderr pg-upsert -d "postgresql://u:$SECRET@[::1/db" -t analytics.fct_orders </dev/null
	fails_with 1 'pg-upsert: connection failed: end of string reached when looking for matching "]" in IPv6 host address in URI: "..."'
	run --separate-stderr pg-cdc-tail -d "postgresql://u:$SECRET%zz@/db" -t orders
	fails_with 1 'pg-cdc-tail: connection failed: invalid percent-encoded token: "..."'
	run --separate-stderr pg-cdc-tail -d "postgresql://u:$SECRET%zz@/db" --mode=logical --slot=s \
		--publication=p -t orders
	fails_with 1 'pg-cdc-tail: connection failed: invalid percent-encoded token: "..."'
	run --separate-stderr order-sim -d "password=$SECRET nosuch=1" --count=1
	fails_with 1 'order-sim: connection failed: invalid connection option "nosuch"'
}

@test "the systemd units create private files and rate 2.0 or better in systemd-analyze security" {
	local u
	for u in pgcdc-source.service pgcdc-sink@.service; do
		grep -qx 'UMask=0077' "$TOP/systemd/$u"
		grep -qx 'StateDirectoryMode=0700' "$TOP/systemd/$u"
		run systemd-analyze security --offline=true --threshold=20 "$TOP/systemd/$u"
		assert_success
		assert_line --regexp "^→ Overall exposure level for ${u/@/@i}: 1\.[0-9] OK"
	done
}
