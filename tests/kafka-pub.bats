#!/usr/bin/env bats
# kafka-pub against a real Apache Kafka broker, read back with kcat.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	kafka_start
}

teardown_file() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	kafka_destroy
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	kafka_start_broker 1
	TOPIC="pub_${BATS_TEST_NUMBER}"
	WORK=$(mktemp -d)
}

teardown() {
	[ -n "${BG:-}" ] && kill -9 $BG 2>/dev/null
	rm -rf "$WORK"
}

# events N [KEYS]: N CDC-like lines over KEYS keys (default 7), seq in "n"
events() {
	awk -v n="$1" -v k="${2:-7}" 'BEGIN {
		for (i = 1; i <= n; i++)
			printf "{\"op\":\"u\",\"key\":{\"id\": %d},\"n\":%d,\"s\":\"ü \\\"q\\\" \\\\n\"}\n", i % k, i
	}'
}

# read_back [kcat -f FORMAT]: every message of $TOPIC
read_back() {
	kcat -b "$KAFKA_BROKERS" -C -t "$TOPIC" -o beginning -e -q "$@"
}

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr kafka-pub --help
	assert_success
	assert_line --index 0 "Usage: kafka-pub [OPTION]... -t TOPIC"
}

@test "--help and --version exit 1 when standard output cannot be written" {
	run --separate-stderr sh -c 'kafka-pub --help >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "kafka-pub: cannot write the help: No space left on device"
	run --separate-stderr sh -c 'kafka-pub --version >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "kafka-pub: cannot write the version: No space left on device"
}

@test "usage errors exit 2 with a hint" {
	run --separate-stderr kafka-pub
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "kafka-pub: error: no topic given (use -t TOPIC)"
	assert_equal "${stderr_lines[1]}" 'Try "kafka-pub --help" for more information.'
	run --separate-stderr kafka-pub -t x -X nosuch.property=1
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'kafka-pub: error: -X nosuch.property: no such configuration property'
	run --separate-stderr kafka-pub -t x -X novalue
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "kafka-pub: error: -X: expected KEY=VALUE"
	run --separate-stderr kafka-pub -t x -F "$WORK/missing.conf"
	assert_failure 2
	assert_regex "${stderr_lines[0]}" '^kafka-pub: error: cannot open config file ".*missing.conf": No such file or directory$'
}

@test "every line becomes one message, byte for byte, keyed by the compact key field" {
	events 1000 >"$WORK/in"
	run --separate-stderr kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(cat "$WORK/ack")" 1000
	read_back >"$WORK/out"
	cmp "$WORK/in" "$WORK/out"
	read_back -f '%k\n' | head -n 2 >"$WORK/keys"
	assert_equal "$(cat "$WORK/keys")" '{"id":1}
{"id":2}'
}

@test "a string key is used bare; without -k messages have no key" {
	printf '{"key":"plain"}\n{"key":"esc\\u00e9"}\n' | kafka-pub -t "$TOPIC" -k key
	printf '{"key":"unkeyed"}\n' | kafka-pub -t "$TOPIC"
	run read_back -f '%k|%s\n'
	assert_line --index 0 'plain|{"key":"plain"}'
	assert_line --index 1 "escé|{\"key\":\"esc\\u00e9\"}"
	assert_line --index 2 '|{"key":"unkeyed"}'
}

@test "per-key order holds across a multi-partition topic, keys placed as Java clients place them" {
	kafka_topic "$TOPIC" 6
	events 5000 20 | kafka-pub -t "$TOPIC" -k key
	read_back -f '%k %p %s\n' >"$WORK/out"
	assert_equal "$(wc -l <"$WORK/out")" 5000
	# one partition per key, and within it the sequence numbers increase
	assert_equal "$(awk '{print $1, $2}' "$WORK/out" | sort -u | wc -l)" 20
	assert_equal "$(cut -d' ' -f2 "$WORK/out" | sort -u | wc -l)" 6
	awk '{ k = $1; match($0, /"n":[0-9]+/); n = substr($0, RSTART + 4, RLENGTH - 4) + 0
	       if (k in last && n <= last[k]) { print "out of order: " $0; exit 1 } last[k] = n }' "$WORK/out"
	# murmur2 like the Java producer: {"id":1} always lands on the same partition as kcat's murmur2
	printf 'x\n' | kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -k '{"id":1}' -X partitioner=murmur2_random
	assert_equal "$(read_back -f '%k %p\n' | grep '^{"id":1} ' | sort -u | wc -l)" 1
}

@test "bad lines go to the dead-letter output with their bytes; the rest is delivered" {
	{
		printf '{"key":1,"n":1}\n'
		printf 'not json\n'
		printf '{"nokey":true}\n'
		printf '{"key":2,"big":"%s"}\n' "$(head -c 3000 /dev/zero | tr '\0' x)"
		printf '{"key":3,"bad":"\xff\xfe"}\n'
		printf '\n'
		printf '{"key":4,"n":4}\n'
	} >"$WORK/in"
	run --separate-stderr kafka-pub -t "$TOPIC" -k key -X message.max.bytes=2000 --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$(cat "$WORK/ack")" 7
	assert_equal "${#stderr_lines[@]}" 5
	assert_equal "${stderr_lines[0]}" '{"error":"not JSON: unexpected character","input_line":2,"line":"not json"}'
	assert_equal "${stderr_lines[1]}" '{"error":"no key field","input_line":3,"line":"{\"nokey\":true}"}'
	assert_regex "${stderr_lines[2]}" '^\{"error":"Broker: Message size too large","input_line":4,"line":"\{\\"key\\":2,\\"big\\":\\"x{3000}\\"\}"\}$'
	assert_equal "${stderr_lines[3]}" '{"error":"not valid UTF-8","input_line":5,"line_base64":"eyJrZXkiOjMsImJhZCI6Iv/+In0="}'
	assert_equal "${stderr_lines[4]}" '{"error":"not JSON: empty","input_line":6,"line":""}'
	run read_back
	assert_output '{"key":1,"n":1}
{"key":4,"n":4}'
}

@test "--dlq appends dead letters to a file" {
	printf 'one\n' | kafka-pub -t "$TOPIC" --dlq="$WORK/dlq"
	printf 'two\n' | kafka-pub -t "$TOPIC" --dlq="$WORK/dlq"
	assert_equal "$(cut -d'"' -f10 "$WORK/dlq" | tr '\n' ' ')" "one two "
}

@test "an unreachable broker: a clear error and exit 1 after the delivery timeout" {
	events 3 | {
		run --separate-stderr kafka-pub -b 127.0.0.1:1 -t "$TOPIC" -X message.timeout.ms=1500 -q --ack="$WORK/ack"
		assert_failure 1
		assert_equal "${stderr_lines[-1]}" "kafka-pub: 3 of 3 lines not delivered (Local: Message timed out)"
		assert_equal "$(cat "$WORK/ack")" 0
	}
}

@test "killed with -9 mid-input, a re-run from the ack count loses nothing" {
	events 200000 >"$WORK/in"
	kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" <"$WORK/in" 2>/dev/null 3>&- &
	BG=$!
	wait_for 30 '[ "$(cat "$WORK/ack" 2>/dev/null || echo 0)" -gt 20000 ]'
	kill -9 $BG
	wait $BG || true
	BG=
	done=$(cat "$WORK/ack")
	[ "$done" -lt 200000 ]
	tail -n +$((done + 1)) "$WORK/in" | kafka-pub -t "$TOPIC" -k key
	read_back | sort -u >"$WORK/got"
	sort -u "$WORK/in" | cmp - "$WORK/got"
}

@test "SIGTERM flushes what was read and exits 0" {
	mkfifo "$WORK/fifo"
	kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" <"$WORK/fifo" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/fifo"
	events 500 >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 500 ]'
	kill -TERM $BG
	wait $BG
	BG=
	exec 4>&-
	assert_equal "$(read_back | wc -l)" 500
}

@test "a broker restart during a publish of 100,000 lines: exit 0, all delivered" {
	events 100000 >"$WORK/in"
	kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" <"$WORK/in" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 30 '[ "$(cat "$WORK/ack" 2>/dev/null || echo 0)" -gt 1000 ]'
	kafka_stop_broker 1
	sleep 1
	kafka_start_broker 1
	wait $BG
	BG=
	assert_equal "$(cat "$WORK/ack")" 100000
	read_back | sort -u >"$WORK/got"
	sort -u "$WORK/in" | cmp - "$WORK/got"
}

@test "a null key field is sent with no key to every partition, not with the key \"null\"" {
	kafka_topic "$TOPIC" 2
	run --separate-stderr kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" <<<'{"key":null}'
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(cat "$WORK/ack")" 1
	run read_back -f '%p [%k] %s\n'
	assert_equal "$(sort <<<"$output")" '0 [] {"key":null}
1 [] {"key":null}'
}
