#!/usr/bin/env bats
# The Kafka test infrastructure (tests/lib/kafka.bash) on a single broker,
# checked with kcat, the independent client.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start kafka
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	# a broker a test stopped and could not start again
	kafka_start_broker 1
}

# sample_lines LO HI: one line per number, with tabs, quotes, backslashes and UTF-8
sample_lines() {
	awk -v lo="$1" -v hi="$2" 'BEGIN {
		for (i = lo; i <= hi; i++)
			printf "%d\tü € \"q\" \\n %s\n", i, substr("xxxxxxxxxxxxxxxxxxxx", 1, i % 20 + 1)
	}'
}

@test "kafka_start exports one broker on loopback, not on port 9092" {
	assert_regex "$KAFKA_BROKERS" '^127\.0\.0\.1:[0-9]+$'
	refute_regex "$KAFKA_BROKERS" ':9092$'
	assert_dir_exists "$KAFKA_DIR"
	run --separate-stderr kcat -b "$KAFKA_BROKERS" -L
	assert_success
	assert_line --index 1 " 1 brokers:"
	assert_line --index 2 "  broker 1 at $KAFKA_BROKERS (controller)"
}

@test "1000 lines produced with kcat come back byte-identical" {
	sample_lines 1 1000 >"$BATS_TEST_TMPDIR/in"
	# the topic does not exist: the broker creates it with one partition
	run --separate-stderr kcat -b "$KAFKA_BROKERS" -P -t lines -X acks=all \
		-X message.timeout.ms=30000 <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_equal "$stderr" ""
	timeout 60 kcat -b "$KAFKA_BROKERS" -C -t lines -e -q >"$BATS_TEST_TMPDIR/out"
	assert_files_equal "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "an idempotent kcat producer is accepted" {
	kafka_topic idem 1
	# a fresh broker may ask it to retry while its coordinator loads: no
	# check of stderr
	run timeout 60 kcat -b "$KAFKA_BROKERS" -P -t idem -X enable.idempotence=true \
		-X message.timeout.ms=30000 < <(seq 1 10)
	assert_success
	run --separate-stderr timeout 60 kcat -b "$KAFKA_BROKERS" -C -t idem -e -q
	assert_output "$(seq 1 10)"
}

@test "a kcat consumer group resumes after its committed offset" {
	kafka_topic grouped 1
	seq 1 5 | kcat -b "$KAFKA_BROKERS" -P -t grouped -X acks=all
	run --separate-stderr timeout 60 kcat -b "$KAFKA_BROKERS" -G g1 -e -q \
		-X auto.offset.reset=earliest grouped
	assert_success
	assert_output "$(seq 1 5)"
	seq 6 8 | kcat -b "$KAFKA_BROKERS" -P -t grouped -X acks=all
	run --separate-stderr timeout 60 kcat -b "$KAFKA_BROKERS" -G g1 -e -q \
		-X auto.offset.reset=earliest grouped
	assert_success
	assert_output "$(seq 6 8)"
}

@test "kafka_topic creates every partition with a leader" {
	run --separate-stderr kafka_topic four 4
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	run kcat -b "$KAFKA_BROKERS" -L -t four
	assert_line '  topic "four" with 4 partitions:'
	assert_line '    partition 3, leader 1, replicas: 1, isrs: 1'
}

@test "kafka_topic fails on an existing topic" {
	kafka_topic twice 1
	run --separate-stderr kafka_topic twice 1
	assert_failure
	assert_regex "$stderr" "Topic 'twice' already exists"
}

@test "kafka_restart brings the broker back with its messages" {
	kafka_topic durable 1
	seq 1 100 | kcat -b "$KAFKA_BROKERS" -P -t durable -X acks=all
	run --separate-stderr kafka_restart
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	run --separate-stderr timeout 60 kcat -b "$KAFKA_BROKERS" -C -t durable -e -q
	assert_success
	assert_output "$(seq 1 100)"
}

@test "kafka_start fails with the broker's output when the broker dies" {
	# a private cluster in the test's directory, which bats removes
	TMPDIR=$BATS_TEST_TMPDIR KAFKA_HEAP_OPTS=-Xmx1k run --separate-stderr kafka_start
	assert_failure
	assert_output ""
	assert_equal "${stderr_lines[0]}" "kafka.bash: broker 1 exited"
	assert_regex "$stderr" "Too small maximum heap"
}

@test "kafka_destroy without a cluster does nothing" {
	KAFKA_DIR= run --separate-stderr kafka_destroy
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	KAFKA_DIR=$BATS_TEST_TMPDIR/none run --separate-stderr kafka_destroy
	assert_success
	assert_equal "$stderr" ""
}
