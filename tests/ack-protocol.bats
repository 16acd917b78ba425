#!/usr/bin/env bats
# The ack-file protocol between the two stages of a pipeline: a count from
# another writer never advances a position, one pipeline per ack file (a lock
# per role) and per consumer name, stages that die with their script, and ack
# files only in directories no one else may write to.  Real PostgreSQL; real
# Kafka where kafka-sub, kafka-pub and the scripts take part.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source warehouse kafka
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	new_source_db
	WORK=$(mktemp -d)
	ACK=$WORK/ack
	SLOT="slot_${BATS_TEST_NUMBER}"
	LOGICAL=(pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --publication=pub)
	TOPIC="ack_${BATS_TEST_NUMBER}"
	GROUP="g_${BATS_TEST_NUMBER}"
	STARTED=()
}

# Stop by pid whatever the test left running (the children of a script
# first), then drop the test's slot once nothing uses it.
teardown() {
	stop_started
	drop_slot "$SLOT"
	rm -rf "$WORK"
}

insert_orders() {
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		SELECT gen_random_uuid(), gen_random_uuid(), '${2:-created}', g, 'EUR', 'DE'
		FROM generate_series(1, $1) g"
}

# put_ack FILE TEXT: replace FILE with exactly TEXT, atomically, as a
# downstream (or anything else) would
put_ack() {
	printf '%s' "$2" >"$1.new" && mv "$1.new" "$1"
}

# the trigger-mode position stored for the default consumer
stored() {
	sql -d "$DB" -c "SELECT last_id FROM cdc.consumer WHERE name = 'pg-cdc-tail'"
}

confirmed() {
	sql -c "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = '$SLOT'"
}

# count FILE: its lines (0 when it does not exist yet)
count() {
	if [ -e "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# refused FILE WHY: the one-line error an upstream stage gives for a count
# from another writer
refused() {
	echo "ack file \"$1\" is refused ($2): only this pipeline's downstream may write it; no position is advanced by it"
}

gone() {
	local p
	for p; do
		! kill -0 "$p" 2>/dev/null || return 1
	done
}

# wait_exit PID SECONDS: wait for the background job PID to end; its exit
# status becomes STATUS
wait_exit() {
	wait_for "$2" "gone $1" || return 1
	STATUS=0
	wait "$1" || STATUS=$?
}

# JSON lines n = lo..hi
json_lines() {
	awk -v lo="$1" -v hi="$2" 'BEGIN { for (i = lo; i <= hi; i++) printf "{\"n\":%d}\n", i }'
}

# the offset the group has committed on partition 0 of the topic, as Kafka's
# own tool reports it
committed() {
	_kafka_java org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
		--bootstrap-server "$KAFKA_BROKERS" --describe --group "$GROUP" 2>/dev/null </dev/null 3>&- |
		awk -v t="$TOPIC" '$2 == t && $3 == 0 { print $4 }'
}

# follow_acked N: N orders, then pg-cdc-tail -f --ack=$ACK in the background
# (output in $WORK/1, errors in $WORK/err) until it has written them
follow_acked() {
	insert_orders "$1"
	pg-cdc-tail -d "$DB" -t orders -f --ack="$ACK" >"$WORK/1" 2>"$WORK/err" 3>&- &
	STARTED+=($!)
	wait_for 10 "[ \"\$(count '$WORK/1')\" = $1 ]"
}

@test "trigger mode: an ack file saying more than was written stops the tail (exit 1); the position stays and a restart sends the rest" {
	follow_acked 100
	put_ack "$ACK" $'40\n'
	wait_for 10 '[ "$(stored)" = 40 ]'
	put_ack "$ACK" $'1000\n'
	wait_exit "${STARTED[0]}" 10
	assert_equal "$STATUS" 1
	assert_equal "$(cat "$WORK/err")" "pg-cdc-tail: $(refused "$ACK" "it says 1000 lines, but only 100 were written")"
	assert_equal "$(stored)" 40
	run --separate-stderr pg-cdc-tail -d "$DB" -t orders
	assert_success
	assert_equal "${#lines[@]}" 60
	assert_equal "$(grep -o '"pos":[0-9]*' <<<"${lines[0]}")" '"pos":41'
}

@test "trigger mode: an ack file of two lines (50, 60) is refused and stores nothing" {
	follow_acked 100
	put_ack "$ACK" $'50\n60'
	wait_exit "${STARTED[0]}" 10
	assert_equal "$STATUS" 1
	assert_equal "$(cat "$WORK/err")" "pg-cdc-tail: $(refused "$ACK" "it is not one line of decimal digits")"
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM cdc.consumer")" 0
	run pg-cdc-tail -d "$DB" -t orders
	assert_equal "${#lines[@]}" 100
}

@test "trigger mode: a count that goes down is refused; the position stays" {
	follow_acked 100
	put_ack "$ACK" $'40\n'
	wait_for 10 '[ "$(stored)" = 40 ]'
	put_ack "$ACK" $'30\n'
	wait_exit "${STARTED[0]}" 10
	assert_equal "$STATUS" 1
	assert_equal "$(cat "$WORK/err")" "pg-cdc-tail: $(refused "$ACK" "it went down from 40 to 30 lines")"
	assert_equal "$(stored)" 40
}

@test "logical mode: an ack file saying more than was written stops the tail (exit 1); the slot confirms no more and a restart sends the rest" {
	"${LOGICAL[@]}" --create-slot -t orders >/dev/null
	insert_orders 3 one
	# the WAL after the first transaction: until its lines are acknowledged
	# the tail confirms a position short of it (from which a restart sends
	# that transaction again), which may come after the tail started
	one=$(sql -c "SELECT pg_current_wal_lsn() - '0/0'")
	insert_orders 3 two
	"${LOGICAL[@]}" -f --ack="$ACK" >"$WORK/1" 2>"$WORK/err" 3>&- &
	STARTED+=($!)
	wait_for 10 '[ "$(count "$WORK/1")" = 6 ]'
	put_ack "$ACK" $'3\n'
	wait_for 10 "[ \"\$(confirmed)\" -ge $one ]"
	put_ack "$ACK" $'1000\n'
	wait_exit "${STARTED[0]}" 10
	assert_equal "$STATUS" 1
	assert_equal "$(cat "$WORK/err")" "pg-cdc-tail: $(refused "$ACK" "it says 1000 lines, but only 6 were written")"
	run --separate-stderr "${LOGICAL[@]}"
	assert_success
	assert_equal "${#lines[@]}" 3
	assert_equal "$(grep -c '"status":"two"' <<<"$output")" 3
}

@test "logical mode: an ack file of two lines is refused; the slot confirms nothing" {
	"${LOGICAL[@]}" --create-slot -t orders >/dev/null
	insert_orders 6
	"${LOGICAL[@]}" -f --ack="$ACK" >"$WORK/1" 2>"$WORK/err" 3>&- &
	STARTED+=($!)
	wait_for 10 '[ "$(count "$WORK/1")" = 6 ]'
	put_ack "$ACK" $'5\n6'
	wait_exit "${STARTED[0]}" 10
	assert_equal "$STATUS" 1
	assert_equal "$(cat "$WORK/err")" "pg-cdc-tail: $(refused "$ACK" "it is not one line of decimal digits")"
	run "${LOGICAL[@]}"
	assert_equal "${#lines[@]}" 6
}

@test "kafka-sub: an ack file saying more than was written stops it (exit 1); no offset is committed past what was acknowledged" {
	json_lines 1 100 | kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC"
	kafka-sub -t "$TOPIC" -g "$GROUP" --ack="$ACK" >"$WORK/1" 2>"$WORK/err" 3>&- &
	STARTED+=($!)
	wait_for 30 '[ "$(count "$WORK/1")" = 100 ]'
	put_ack "$ACK" $'40\n'
	wait_for 60 '[ "$(committed)" = 40 ]'
	put_ack "$ACK" $'1000\n'
	wait_exit "${STARTED[0]}" 20
	assert_equal "$STATUS" 1
	grep -qxF "kafka-sub: $(refused "$ACK" "it says 1000 lines, but only 100 were written")" "$WORK/err"
	assert_equal "$(committed)" 40
	run --separate-stderr kafka-sub -t "$TOPIC" -g "$GROUP" -e
	assert_success
	assert_output "$(json_lines 41 100)"
}

@test "a second pipeline on the same ack file refuses to start, as upstream or downstream, and leaves the count alone" {
	insert_orders 5
	pg-cdc-tail -d "$DB" -t orders -f --ack="$ACK" >"$WORK/1" 2>/dev/null 3>&- &
	up=$!
	STARTED+=("$up")
	wait_for 10 '[ "$(count "$WORK/1")" = 5 ]'
	put_ack "$ACK" $'3\n'
	run --separate-stderr timeout 30 pg-cdc-tail -d "$DB" -t orders -n other -f --ack="$ACK"
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: ack file \"$ACK\" is in use by another pipeline (pid $up holds $ACK.lock)"
	run --separate-stderr timeout 30 kafka-sub -t "$TOPIC" -g "$GROUP" --ack="$ACK"
	assert_failure 1
	assert_equal "$stderr" "kafka-sub: ack file \"$ACK\" is in use by another pipeline (pid $up holds $ACK.lock)"
	assert_equal "$(cat "$ACK")" 3

	# the downstream role, on a file of its own: kafka-pub reading a fifo
	mkfifo "$WORK/fifo"
	kafka-pub -t "$TOPIC" --ack="$WORK/down.ack" <"$WORK/fifo" 2>/dev/null 3>&- &
	down=$!
	STARTED+=("$down")
	exec 5>"$WORK/fifo"
	wait_for 10 "[ -e '$WORK/down.ack' ]"
	put_ack "$WORK/down.ack" $'7\n'
	run --separate-stderr timeout 30 kafka-pub -t "$TOPIC" --ack="$WORK/down.ack" </dev/null
	assert_failure 1
	assert_equal "$stderr" "kafka-pub: ack file \"$WORK/down.ack\" is in use by another pipeline (pid $down holds $WORK/down.ack.lock)"
	run --separate-stderr timeout 30 pg-upsert -d "$DB" -t orders --ack="$WORK/down.ack" </dev/null
	assert_failure 1
	assert_equal "$stderr" "pg-upsert: ack file \"$WORK/down.ack\" is in use by another pipeline (pid $down holds $WORK/down.ack.lock)"
	assert_equal "$(cat "$WORK/down.ack")" 7
	exec 5>&-
	wait_exit "$down" 10
	assert_equal "$STATUS" 0
}

@test "trigger mode: a second tail under the same consumer name refuses, also after the first reconnected" {
	insert_orders 3
	pg-cdc-tail -d "$DB" -t orders -f --poll=200 >"$WORK/1" 2>"$WORK/err" 3>&- &
	STARTED+=($!)
	wait_for 10 '[ "$(count "$WORK/1")" = 3 ]'
	run --separate-stderr timeout 30 pg-cdc-tail -d "$DB" -t orders -f
	assert_failure 1
	assert_output ""
	assert_regex "$stderr" '^pg-cdc-tail: consumer "pg-cdc-tail" is in use by another pg-cdc-tail \(server process [0-9]+\)$'
	# another name is another consumer
	run --separate-stderr pg-cdc-tail -d "$DB" -t orders -n other
	assert_success
	assert_equal "${#lines[@]}" 3
	# the first one's session is cut: it reconnects and takes the lock again
	holder() {
		sql -d "$DB" -c "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND classid = 1885823844 AND objid = hashtext('pg-cdc-tail')::oid"
	}
	old=$(holder)
	[ -n "$old" ]
	sql -d "$DB" -c "SELECT pg_terminate_backend($old)" >/dev/null
	wait_for 20 "[ -n \"\$(holder)\" ] && [ \"\$(holder)\" != $old ]"
	run --separate-stderr timeout 30 pg-cdc-tail -d "$DB" -t orders -f
	assert_failure 1
	assert_regex "$stderr" '^pg-cdc-tail: consumer "pg-cdc-tail" is in use by another pg-cdc-tail \(server process [0-9]+\)$'
	insert_orders 1
	wait_for 10 '[ "$(count "$WORK/1")" = 4 ]'
}

@test "cdc-source and cdc-sink killed by SIGKILL: their stages are gone within seconds, and new ones start" {
	new_warehouse_db
	printf '%s\n' "CDC_SOURCE=host=$PGHOST port=$PGPORT user=postgres dbname=$DB" \
		"CDC_TABLE=orders" "CDC_TOPIC=$TOPIC" "KAFKA_BROKERS=$KAFKA_BROKERS" \
		"CDC_STATE_DIR=$WORK/state" "CDC_TAIL_OPTS=--poll=200" >"$WORK/source.env"
	printf '%s\n' "CDC_WAREHOUSE=host=$PGHOST port=$PGPORT user=postgres dbname=$WH" \
		"CDC_TARGET=analytics.fct_orders" "CDC_TOPIC=$TOPIC" "CDC_GROUP=$GROUP" \
		"KAFKA_BROKERS=$KAFKA_BROKERS" "CDC_STATE_DIR=$WORK/state" >"$WORK/sink.env"
	kafka_topic "$TOPIC" 1
	insert_orders 10
	for round in 1 2; do
		env -i PATH="$PATH" cdc-source -e "$WORK/source.env" </dev/null >/dev/null 2>>"$WORK/source.err" 3>&- &
		source=$!
		env -i PATH="$PATH" cdc-sink -e "$WORK/sink.env" </dev/null >/dev/null 2>>"$WORK/sink.err" 3>&- &
		sink=$!
		STARTED+=("$source" "$sink")
		# the changes go all the way through: every stage runs
		wait_for 60 "[ \"\$(sql -d $WH -c 'SELECT count(*) FROM analytics.fct_orders')\" = $((10 * round)) ]"
		stages="$(pgrep -P "$source" -d ' ') $(pgrep -P "$sink" -d ' ')"
		assert_equal "$(wc -w <<<"$stages")" 4
		kill -9 "$source" "$sink"
		wait "$source" "$sink" 2>/dev/null || true
		wait_for 5 "gone $stages" || fail "stages left running: $(ps -o pid=,args= -p "$(echo $stages | tr ' ' ,)")"
		insert_orders 10
	done
}

@test "an ack file in a directory others may write to, or of another user, is refused by every tool" {
	mkdir -m 1777 "$WORK/shared"
	f=$WORK/shared/ack
	why="directory \"$WORK/shared\" is writable by group or others"
	run --separate-stderr timeout 30 pg-cdc-tail -d "$DB" -t orders --ack="$f"
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: refusing ack file \"$f\": $why"
	run --separate-stderr timeout 30 "${LOGICAL[@]}" --create-slot -t orders --ack="$f"
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: refusing ack file \"$f\": $why"
	run --separate-stderr timeout 30 kafka-sub -t "$TOPIC" -g "$GROUP" -e --ack="$f"
	assert_failure 1
	assert_equal "$stderr" "kafka-sub: refusing ack file \"$f\": $why"
	run --separate-stderr timeout 30 kafka-pub -t "$TOPIC" --ack="$f" </dev/null
	assert_failure 1
	assert_equal "$stderr" "kafka-pub: refusing ack file \"$f\": $why"
	run --separate-stderr timeout 30 pg-upsert -d "$DB" -t orders --ack="$f" </dev/null
	assert_failure 1
	assert_equal "$stderr" "pg-upsert: refusing ack file \"$f\": $why"
	assert_not_exist "$f"

	mkdir -m 0770 "$WORK/group"
	run --separate-stderr timeout 30 kafka-pub -t "$TOPIC" --ack="$WORK/group/ack" </dev/null
	assert_failure 1
	assert_equal "$stderr" "kafka-pub: refusing ack file \"$WORK/group/ack\": directory \"$WORK/group\" is writable by group or others"

	# root may not use another user's directory either (the tests run as root)
	[ "$(id -u)" = 0 ] || return 0
	theirs=$WORK/theirs
	mkdir -m 0755 "$theirs"
	chown postgres "$theirs"
	run --separate-stderr timeout 30 pg-cdc-tail -d "$DB" -t orders --ack="$theirs/ack"
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: refusing ack file \"$theirs/ack\": directory \"$theirs\" is owned by another user"
	assert_not_exist "$theirs/ack"
}
