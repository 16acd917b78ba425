#!/usr/bin/env bats
# The Kafka test infrastructure (tests/lib/kafka.bash) on a cluster of three
# brokers: replication, a killed broker, restarts.  Checked with kcat.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	kafka_start 3
}

teardown_file() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	kafka_destroy
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	# brokers an earlier test stopped and could not start again
	local i
	for i in 1 2 3; do kafka_start_broker "$i"; done
}

# in_sync TOPIC BROKER: every partition of the topic has BROKER in its ISR
in_sync() {
	local meta total with
	meta=$(kcat -b "$KAFKA_BROKERS" -L -t "$1" 2>/dev/null | grep '^ *partition [0-9]*,')
	total=$(grep -c . <<<"$meta")
	with=$(grep -c "isrs: \([0-9,]*,\)\?$2\(,[0-9,]*\)\?$" <<<"$meta")
	[ "$total" -gt 0 ] && [ "$with" -eq "$total" ]
}

@test "kafka_start 3 runs three brokers that each know all three" {
	local b
	assert_regex "$KAFKA_BROKERS" '^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$'
	for b in ${KAFKA_BROKERS//,/ }; do
		run --separate-stderr kcat -b "$b" -L
		assert_success
		assert_line --index 1 " 3 brokers:"
		assert_line --partial "broker 1 at ${KAFKA_BROKERS%%,*}"
	done
}

@test "an RF 3 topic takes acks=all writes while a broker is killed" {
	kafka_topic survive 3 3
	run kcat -b "$KAFKA_BROKERS" -L -t survive
	assert_line --regexp '^    partition 0, leader [123], replicas: [123],[123],[123], isrs: [123],[123],[123]$'
	kafka_kill_broker 2
	seq 1 1000 >"$BATS_TEST_TMPDIR/in"
	# kcat complains on stderr about the dead broker; what counts is its status
	run timeout 60 kcat -b "$KAFKA_BROKERS" -P -t survive -X acks=all \
		-X message.timeout.ms=30000 <"$BATS_TEST_TMPDIR/in"
	assert_success
	run --separate-stderr kcat -b "$KAFKA_BROKERS" -L -t survive
	assert_line --index 1 " 2 brokers:"
	refute_line --regexp 'leader 2,'
	timeout 60 kcat -b "$KAFKA_BROKERS" -C -t survive -e -q 2>/dev/null |
		sort -n >"$BATS_TEST_TMPDIR/out"
	assert_files_equal "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	kafka_start_broker 2
	wait_for 30 'in_sync survive 2'
}

@test "a gracefully stopped broker catches up when it starts again" {
	kafka_topic caught 1 3
	kafka_stop_broker 3
	run --separate-stderr kcat -b "${KAFKA_BROKERS##*,}" -L -m 1
	assert_failure
	# min.insync.replicas=2: two brokers still take acks=all writes
	seq 1 100 | timeout 60 kcat -b "$KAFKA_BROKERS" -P -t caught -X acks=all \
		-X message.timeout.ms=30000 2>/dev/null
	run --separate-stderr kafka_start_broker 3
	assert_success
	assert_equal "$stderr" ""
	# back in the ISR: it has copied all 100 messages
	wait_for 30 'in_sync caught 3'
	run --separate-stderr timeout 60 kcat -b "$KAFKA_BROKERS" -C -t caught -e -q
	assert_success
	assert_output "$(seq 1 100)"
}

@test "kafka-pub: one broker of three killed during a publish, nothing lost; kafka-sub reads it all" {
	kafka_topic pubkill 3 3
	awk 'BEGIN { for (i = 1; i <= 50000; i++) printf "{\"key\":{\"id\":%d},\"n\":%d}\n", i % 100, i }' \
		>"$BATS_TEST_TMPDIR/in"
	kafka-pub -t pubkill -k key --ack="$BATS_TEST_TMPDIR/ack" <"$BATS_TEST_TMPDIR/in" \
		2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local pub=$!
	wait_for 30 '[ "$(cat "$BATS_TEST_TMPDIR/ack" 2>/dev/null || echo 0)" -gt 2000 ]'
	kafka_kill_broker 3
	wait $pub
	assert_equal "$(cat "$BATS_TEST_TMPDIR/ack")" 50000
	kafka_start_broker 3
	run --separate-stderr kafka-sub -t pubkill -g pubkill -o beginning -e
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]}" | sort -u | wc -l)" 50000
	assert_equal "$(printf '%s\n' "${lines[@]}" | sort -u)" "$(sort -u "$BATS_TEST_TMPDIR/in")"
}
