#!/usr/bin/env bats
# kafka-mock: the in-memory Kafka cluster, checked with kcat as the independent client.

bats_require_minimum_version 1.5.0

setup() {
	load lib/common
	MOCK_PIDS=()
	NFIFO=0
}

teardown() {
	local pid
	for pid in "${MOCK_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	return 0
}

TRY='Try "kafka-mock --help" for more information.'

# start_mock ARGS...: start kafka-mock in the background and read the first
# line of its stdout (through a fifo, 10 s at most) into ADDR; the fifo stays
# open as MOCK_FD, its stderr goes to $BATS_TEST_TMPDIR/stderr, its pid to
# MOCK_PID.
start_mock() {
	local fifo="$BATS_TEST_TMPDIR/addr.$((NFIFO += 1))"
	mkfifo "$fifo"
	kafka-mock "$@" >"$fifo" 2>"$BATS_TEST_TMPDIR/stderr" 3>&- &
	MOCK_PID=$!
	MOCK_PIDS+=("$MOCK_PID")
	exec {MOCK_FD}<"$fifo"
	ADDR=
	read -r -t 10 ADDR <&"$MOCK_FD"
}

# usage_fails MESSAGE ARGS...: kafka-mock ARGS is a usage error saying MESSAGE
usage_fails() {
	local msg=$1
	shift
	run --separate-stderr kafka-mock "$@"
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[ "$stderr" = "kafka-mock: error: $msg
$TRY" ]
}

# stop_mock SIGNAL: send it, and check the exit is 0 within 3 s
stop_mock() {
	local start=$SECONDS rc=0
	kill "-$1" "$MOCK_PID"
	wait "$MOCK_PID" || rc=$?
	[ "$rc" -eq 0 ]
	[ $((SECONDS - start)) -le 3 ]
}

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr kafka-mock --help
	assert_success
	assert_line --index 0 'Usage: kafka-mock [--brokers=N] [--topic=NAME[:PARTITIONS]]... [-X KEY=VALUE]... [-hqVv]'
	assert_output --partial '      --brokers=N         number of brokers, 1..16 (default: 1)'
	[ -z "$stderr" ]
}

@test "--help and --version exit 1 when standard output cannot be written" {
	run --separate-stderr sh -c 'kafka-mock --help >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "kafka-mock: cannot write the help: No space left on device"
	run --separate-stderr sh -c 'kafka-mock --version >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "kafka-mock: cannot write the version: No space left on device"
}

@test "--version prints the name and version" {
	run --separate-stderr kafka-mock -V
	assert_success
	assert_output --regexp '^kafka-mock [0-9]+\.[0-9]+\.[0-9]+$'
	[ -z "$stderr" ]
}

@test "an unknown option is a usage error" {
	usage_fails 'unrecognized option "--bogus"' --bogus
	usage_fails 'unrecognized option "-b"' -b 3
}

@test "an option without its value is a usage error" {
	usage_fails 'missing argument for option "--topic"' --topic
	usage_fails 'missing argument for option "-X"' -X
}

@test "an argument is a usage error" {
	usage_fails 'unexpected argument "t"' t
}

@test "--brokers out of 1..16 or not a number is a usage error" {
	usage_fails '--brokers must be in range 1..16' --brokers=0
	usage_fails '--brokers must be in range 1..16' --brokers 17
	usage_fails 'invalid value "three" for option --brokers' --brokers=three
}

@test "a bad --topic is a usage error" {
	usage_fails '--topic "": invalid topic name' --topic=
	usage_fails '--topic ":3": invalid topic name' --topic=:3
	usage_fails '--topic "a b": invalid topic name' --topic='a b'
	usage_fails '--topic "t:0": partitions must be a number in 1..10000' --topic=t:0
	usage_fails '--topic "t:10001": partitions must be a number in 1..10000' --topic=t:10001
	usage_fails '--topic "t:six": partitions must be a number in 1..10000' --topic=t:six
	usage_fails '--topic "t:": partitions must be a number in 1..10000' --topic=t:
	usage_fails '--topic "t:-1": partitions must be a number in 1..10000' --topic=t:-1
	usage_fails 'topic "t" given twice' --topic=t:2 --topic=t
}

@test "a bad -X property is a usage error" {
	usage_fails '-X nosuch: no such configuration property' -X nosuch=1
	usage_fails '-X: expected KEY=VALUE' -X debug
}

@test "prints one line, the bootstrap address, then end of file" {
	start_mock
	[[ $ADDR =~ ^127\.0\.0\.1:[0-9]+$ ]]
	local extra rc=0
	read -r -t 5 extra <&"$MOCK_FD" || rc=$?
	[ "$rc" -eq 1 ]		# end of file, not a timeout (>128)
	[ -z "$extra" ]
	kill -0 "$MOCK_PID"	# and it keeps serving
	# what it does not keep, said on stderr
	run cat "$BATS_TEST_TMPDIR/stderr"
	assert_output 'kafka-mock: warning: a mock cluster for demos and tests: each partition keeps only its newest 5 MiB or 100000 message sets and drops older messages without notice, and a consumer group started again waits about 45 s for its partitions'
}

@test "-q starts it without the warning of its limits" {
	start_mock -q
	[ -n "$ADDR" ]
	sleep 0.2
	[ ! -s "$BATS_TEST_TMPDIR/stderr" ]
}

@test "each partition keeps only its newest 5 MiB, as the warning says" {
	start_mock -q --topic=t:1
	# 8 MiB in 20,000 lines of 400 bytes: the oldest are dropped
	awk 'BEGIN { for (i = 1; i <= 20000; i++) printf "%05d%0395d\n", i, 0 }' |
		kcat -P -b "$ADDR" -t t -X linger.ms=50
	run --separate-stderr timeout 20 kcat -C -b "$ADDR" -t t -e -q
	assert_success
	[ "${#lines[@]}" -lt 14000 ]
	[ "${#lines[@]}" -gt 8000 ]
	# the newest survive
	assert_equal "${lines[-1]:0:5}" 20000
}

@test "--brokers=3 prints three addresses" {
	start_mock --brokers=3
	[[ $ADDR =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]]
}

@test "100 lines round-trip through kcat byte for byte" {
	start_mock --topic=rt
	local in="$BATS_TEST_TMPDIR/in" i
	for i in $(seq 1 99); do
		printf '{"n":%d,"s":"tab\there \\"quoted\\" back\\\\slash","u":"ünïcødé €"}  \n' "$i"
	done >"$in"
	head -c 20000 /dev/zero | tr '\0' x >>"$in"
	echo >>"$in"
	[ "$(wc -l <"$in")" -eq 100 ]
	timeout 20 kcat -P -b "$ADDR" -t rt <"$in"
	timeout 20 kcat -C -b "$ADDR" -t rt -e -q >"$BATS_TEST_TMPDIR/out"
	cmp "$in" "$BATS_TEST_TMPDIR/out"
}

@test "--brokers=3 --topic=t:6 makes 3 brokers and 6 partitions" {
	start_mock --brokers=3 --topic=t:6
	run --separate-stderr timeout 10 kcat -L -b "$ADDR" -t t
	assert_success
	assert_line ' 3 brokers:'
	assert_line '  topic "t" with 6 partitions:'
	[ "$(grep -c '^    partition [0-5], leader [1-3], replicas: [1-3],[1-3],[1-3], isrs: ' <<<"$output")" -eq 6 ]
}

@test "--topic is repeatable; replication is the broker count up to 3" {
	start_mock --brokers=2 --topic=a:2 --topic=b
	run --separate-stderr timeout 10 kcat -L -b "$ADDR"
	assert_success
	assert_line ' 2 brokers:'
	assert_line '  topic "a" with 2 partitions:'
	assert_line '  topic "b" with 1 partitions:'
	[ "$(grep -c 'replicas: [12],[12], isrs' <<<"$output")" -eq 3 ]
}

@test "a topic produced to is created on first use with 4 partitions" {
	start_mock
	printf 'one\n' | timeout 20 kcat -P -b "$ADDR" -t fresh
	run --separate-stderr timeout 10 kcat -L -b "$ADDR" -t fresh
	assert_line '  topic "fresh" with 4 partitions:'
	run --separate-stderr timeout 20 kcat -C -b "$ADDR" -t fresh -e -q
	assert_output one
}

@test "-X sets librdkafka properties; -v shows the topics and debug messages" {
	start_mock -v -X debug=mock --topic=t:2
	[ -n "$ADDR" ]
	run cat "$BATS_TEST_TMPDIR/stderr"
	assert_line 'kafka-mock: debug: topic "t": 2 partitions, replication factor 1'
	assert_line --regexp '^kafka-mock: debug: kafka: MOCK: .*bootstrap\.servers='"$ADDR"'$'
}

@test "SIGTERM stops it with exit 0" {
	start_mock --brokers=3
	stop_mock TERM
}

@test "SIGINT stops it with exit 0" {
	start_mock
	stop_mock INT
}

@test "a closed stdout is a warning: it keeps serving" {
	kafka-mock --brokers=2 >&- 2>"$BATS_TEST_TMPDIR/stderr" 3>&- &
	MOCK_PID=$!
	MOCK_PIDS+=("$MOCK_PID")
	wait_for 10 '[ -s "$BATS_TEST_TMPDIR/stderr" ]'
	run cat "$BATS_TEST_TMPDIR/stderr"
	assert_line --index 0 'kafka-mock: warning: cannot write the address to standard output: Bad file descriptor'
	sleep 0.2
	kill -0 "$MOCK_PID"
	stop_mock TERM
}

@test "the man page passes mandoc -T lint" {
	run mandoc -T lint -W warning "$TOP/man/kafka-mock.1"
	assert_success
	assert_output ''
}

@test "the man page example runs" {
	local script
	# the literal lines of the EXAMPLES section, as rendered
	script=$(mandoc -T ascii "$TOP/man/kafka-mock.1" | col -bx |
		sed -n '/^EXAMPLES/,/^SEE ALSO/s/^           \([^ ].*\)$/\1/p')
	[ "$(wc -l <<<"$script")" -eq 6 ]
	mkdir "$BATS_TEST_TMPDIR/ex"
	cd "$BATS_TEST_TMPDIR/ex"
	# wait: the cluster it started is gone too when the example is done
	run --separate-stderr timeout 30 sh -ec "$script
wait" 3>&-
	assert_success
	[ "$(sort <<<"$output" | tr '\n' ' ')" = 'one three two ' ]
}
