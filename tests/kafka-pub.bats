#!/usr/bin/env bats
# kafka-pub against a real Apache Kafka broker, read back with kcat.

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
	assert_line "      --stats=SECONDS     a JSON line of figures on stderr every SECONDS (and on SIGUSR1)"
	assert_line "      --metrics=FILE      keep the figures in FILE for Prometheus (node_exporter's textfile)"
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
	assert_equal "${stderr_lines[0]}" "kafka-pub: error: no topic given (use -t TOPIC or --topic-prefix=PREFIX)"
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

@test "a non-string key is compact JSON: whitespace dropped outside its strings only" {
	printf '%s\n' '{"key":{ "a" : "x y\" z" ,	"b":[1, 2] }}' '{"key":{"a":"x  y","b":[1,2]}}' \
		'{"key":[ ]}' '{"key":12.5e3}' '{"key":true , "n":1}' | kafka-pub -t "$TOPIC" -k key
	run read_back -f '%k\n'
	assert_output '{"a":"x y\" z","b":[1,2]}
{"a":"x  y","b":[1,2]}
[]
12.5e3
true'
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

@test "a producer queue smaller than a batch of lines: every line delivered once, in per-key order" {
	kafka_topic "$TOPIC" 3
	# lines of 200 bytes to 6 KiB: a queue of 7 messages and 16 KiB holds a few at most
	awk 'BEGIN { for (i = 1; i <= 3000; i++) printf "{\"key\":%d,\"n\":%d,\"p\":\"%*s\"}\n", i % 11, i, 200 + (i * 97) % 6000, "" }' >"$WORK/in"
	run --separate-stderr kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" \
		-X queue.buffering.max.messages=7 -X queue.buffering.max.kbytes=16 <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(cat "$WORK/ack")" 3000
	read_back -f '%k %s\n' >"$WORK/out"
	cut -d' ' -f2- "$WORK/out" | sort | cmp - <(sort "$WORK/in")
	awk '{ k = $1; match($0, /"n":[0-9]+/); n = substr($0, RSTART + 4, RLENGTH - 4) + 0
	       if (k in last && n <= last[k]) { print "out of order: " $0; exit 1 } last[k] = n }' "$WORK/out"
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

# tables N PREFIX: N CDC-like lines over the tables public.a, public.b and
# inv.c in turn, each over 5 keys, seq in "n"
tables() {
	awk -v n="$1" 'BEGIN {
		split("public.a public.b inv.c", t, " ")
		for (i = 1; i <= n; i++)
			printf "{\"op\":\"u\",\"table\":\"%s\",\"key\":{\"id\":%d},\"n\":%d}\n", t[i % 3 + 1], i % 5, i
	}'
}

# read_topic NAME [kcat options]: every message of topic NAME
read_topic() {
	local t=$1
	shift
	kcat -b "$KAFKA_BROKERS" -C -t "$t" -o beginning -e -q "$@"
}

# in_key_order: lines "KEY {...,"n":N,...}" have increasing N per key
in_key_order() {
	awk '{ k = $1; match($0, /"n":[0-9]+/); n = substr($0, RSTART + 4, RLENGTH - 4) + 0
	       if (k in last && n <= last[k]) { print "out of order: " $0; exit 1 } last[k] = n }'
}

@test "--topic-prefix: usage errors exit 2" {
	run --separate-stderr kafka-pub -t x --topic-prefix=cdc
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "kafka-pub: error: -t and --topic-prefix cannot be used together"
	assert_equal "${stderr_lines[1]}" 'Try "kafka-pub --help" for more information.'
	run --separate-stderr kafka-pub --topic-prefix=
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'kafka-pub: error: invalid topic prefix "" (1 to 247 of A-Z a-z 0-9 . _ -)'
	run --separate-stderr kafka-pub --topic-prefix='cdc/x'
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'kafka-pub: error: invalid topic prefix "cdc/x" (1 to 247 of A-Z a-z 0-9 . _ -)'
	run --separate-stderr kafka-pub --topic-prefix="$(printf 'p%.0s' $(seq 248))"
	assert_failure 2
	run --separate-stderr kafka-pub -k key
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "kafka-pub: error: no topic given (use -t TOPIC or --topic-prefix=PREFIX)"
}

@test "--topic-prefix routes the lines of 3 tables to PREFIX.SCHEMA.TABLE, whole and in per-key order" {
	P="cdc$BATS_TEST_NUMBER"
	# one topic made beforehand with 3 partitions, two made by the broker on first use
	kafka_topic "$P.public.a" 3
	tables 3000 >"$WORK/in"
	run --separate-stderr kafka-pub --topic-prefix="$P" -k key --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(cat "$WORK/ack")" 3000
	for t in public.a public.b inv.c; do
		read_topic "$P.$t" -f '%k %s\n' >"$WORK/out"
		assert_equal "$(wc -l <"$WORK/out")" 1000
		cut -d' ' -f2- "$WORK/out" | sort >"$WORK/got"
		grep -F "\"table\":\"$t\"" "$WORK/in" | sort | cmp - "$WORK/got"
		in_key_order <"$WORK/out"
	done
	assert_equal "$(read_topic "$P.public.a" -f '%p\n' | sort -u | tr '\n' ' ')" "0 1 2 "
	# nothing else under the prefix
	run kcat -b "$KAFKA_BROKERS" -L
	assert_equal "$(grep -c "topic \"$P\." <<<"$output")" 3
}

@test "--topic-prefix: a null-key line goes to every partition of its own table's topic only" {
	P="cdc$BATS_TEST_NUMBER"
	kafka_topic "$P.public.a" 3
	kafka_topic "$P.public.b" 2
	{
		tables 60 | grep -v inv.c
		printf '{"op":"t","table":"public.a","key":null,"n":1000}\n'
		tables 120 | grep -v inv.c | tail -n 40
	} >"$WORK/in"
	run --separate-stderr kafka-pub --topic-prefix="$P" -k key --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$(cat "$WORK/ack")" "$(wc -l <"$WORK/in")"
	# one copy on each of a's partitions, none on b's
	read_topic "$P.public.a" -f '%p %s\n' >"$WORK/a"
	assert_equal "$(grep '"op":"t"' "$WORK/a" | cut -d' ' -f1 | sort | tr '\n' ' ')" "0 1 2 "
	run read_topic "$P.public.b"
	assert_equal "$(grep -c '"op":"t"' <<<"$output")" 0
	assert_equal "${#lines[@]}" "$(grep -c '"public.b"' "$WORK/in")"
	# on each partition, after every line before it in the input and before every line after
	for p in 0 1 2; do
		grep "^$p " "$WORK/a" | cut -d' ' -f2- >"$WORK/p"
		awk '{ match($0, /"n":[0-9]+/); n = substr($0, RSTART + 4, RLENGTH - 4) + 0
		       if (/"op":"t"/) t = NR; else if ((n <= 60) != (t == 0)) { print "misplaced: " $0; exit 1 } }
		     END { if (!t) exit 1 }' "$WORK/p"
	done
	assert_equal "$(grep -vc '"op":"t"' "$WORK/a")" "$(grep '"public.a"' "$WORK/in" | grep -vc '"op":"t"')"
}

@test "--topic-prefix: a topic the broker creates on first use takes a null-key line first" {
	P="cdc$BATS_TEST_NUMBER"
	{
		printf '{"op":"s","table":"public.new","key":null,"columns":[],"n":0}\n'
		tables 9 | grep public.a | sed 's/public\.a/public.new/'
	} >"$WORK/in"
	# not there before (a listing of all topics creates none)
	run kcat -b "$KAFKA_BROKERS" -L
	refute_output --partial "\"$P.public.new\""
	run --separate-stderr kafka-pub --topic-prefix="$P" -k key --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(cat "$WORK/ack")" 4
	# the broker's default: one partition, holding the line once, first
	read_topic "$P.public.new" >"$WORK/out"
	cmp "$WORK/in" "$WORK/out"
}

@test "--topic-prefix: characters outside [A-Za-z0-9._-] of a decoded table name become _" {
	P="cdc$BATS_TEST_NUMBER"
	printf '%s\n' '{"table":"public.Ordèrs $x","n":1}' '{"table":"public.\u0041b-c_d","n":2}' \
		'{"table":"a/b\"c","n":3}' >"$WORK/in"
	run --separate-stderr kafka-pub --topic-prefix="$P.x-y_z" <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(read_topic "$P.x-y_z.public.Ord_rs__x")" '{"table":"public.Ordèrs $x","n":1}'
	assert_equal "$(read_topic "$P.x-y_z.public.Ab-c_d")" '{"table":"public.\u0041b-c_d","n":2}'
	assert_equal "$(read_topic "$P.x-y_z.a_b_c")" '{"table":"a/b\"c","n":3}'
}

@test "--topic-prefix: a line without a string table member is dead-lettered, the rest delivered" {
	P="cdc$BATS_TEST_NUMBER"
	long=$(printf 't%.0s' $(seq 250))
	{
		printf '{"table":"public.a","key":1}\n'
		printf '{"key":2}\n'
		printf '{"table":7,"key":3}\n'
		printf '{"table":null,"key":4}\n'
		printf '{"table":"","key":5}\n'
		printf '{"table":"%s","key":6}\n' "$long"
		printf '{"table":"public.a"}\n'
		printf '{"table":"public.a","key":8}\n'
	} >"$WORK/in"
	run --separate-stderr kafka-pub --topic-prefix="$P" -k key --ack="$WORK/ack" <"$WORK/in"
	assert_success
	assert_equal "$(cat "$WORK/ack")" 8
	assert_equal "${#stderr_lines[@]}" 6
	assert_equal "${stderr_lines[0]}" '{"error":"no table field","input_line":2,"line":"{\"key\":2}"}'
	assert_equal "${stderr_lines[1]}" '{"error":"table field not a string","input_line":3,"line":"{\"table\":7,\"key\":3}"}'
	assert_equal "${stderr_lines[2]}" '{"error":"table field not a string","input_line":4,"line":"{\"table\":null,\"key\":4}"}'
	assert_equal "${stderr_lines[3]}" '{"error":"empty table field","input_line":5,"table":"","line":"{\"table\":\"\",\"key\":5}"}'
	assert_equal "${stderr_lines[4]}" "{\"error\":\"topic name too long\",\"input_line\":6,\"table\":\"$long\",\"line\":\"{\\\"table\\\":\\\"$long\\\",\\\"key\\\":6}\"}"
	assert_equal "${stderr_lines[5]}" '{"error":"no key field","input_line":7,"table":"public.a","line":"{\"table\":\"public.a\"}"}'
	run read_topic "$P.public.a"
	assert_output '{"table":"public.a","key":1}
{"table":"public.a","key":8}'
}

@test "--topic-prefix with -k table: the table routes and keys the line" {
	P="cdc$BATS_TEST_NUMBER"
	printf '{"table":"s.t","n":1}\n{"table":"s.u","n":2}\n' | kafka-pub --topic-prefix="$P" -k table
	assert_equal "$(read_topic "$P.s.t" -f '%k %s')" 's.t {"table":"s.t","n":1}'
	assert_equal "$(read_topic "$P.s.u" -f '%k %s')" 's.u {"table":"s.u","n":2}'
}

# unlearnable T ARGS...: a null-key line of table public.a to an unreachable
# broker fails as the line of topic T, the reason the same in both messages
unlearnable() {
	local t=$1
	shift
	rm -f "$WORK/ack"
	run --separate-stderr kafka-pub "$@" -k key -b 127.0.0.1:1 -X message.timeout.ms=1500 \
		-q --ack="$WORK/ack" <<<'{"table":"public.a","key":null}'
	assert_failure 1
	assert_equal "${#stderr_lines[@]}" 2
	assert_regex "${stderr_lines[0]}" "^kafka-pub: cannot learn the partitions of topic \"$t\": Local: "
	why=${stderr_lines[0]##*\": }
	assert_equal "${stderr_lines[1]}" "kafka-pub: 1 of 1 lines not delivered ($why)"
	assert_equal "$(cat "$WORK/ack")" 0
}

@test "a null-key line whose topic's partitions cannot be learned: exit 1 with the reason, not counted" {
	unlearnable "$TOPIC" -t "$TOPIC"
	unlearnable cdc.public.a --topic-prefix=cdc
}

# fig FILTER FILE: jq's FILTER of the last kafka-pub line of FILE, compact
fig() {
	grep '^{"stage":"kafka-pub"' "$2" | tail -n 1 | jq -c "$1"
}

@test "--stats and --metrics: the line at exit counts what was read, delivered and dead-lettered" {
	{ events 300; echo 'not json'; events 2; } >"$WORK/in"
	# librdkafka's statistics, for the retries, as often as -X says (every 5 s by default)
	run --separate-stderr kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" --dlq="$WORK/dlq" --stats=60 \
		--stats-file="$WORK/stats" --metrics="$WORK/pub.prom" -X statistics.interval.ms=50 <"$WORK/in"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(read_back | wc -l)" 302
	assert_equal "$(cat "$WORK/ack")" 303
	assert_equal "$(wc -l <"$WORK/dlq")" 1
	# --stats=60 in a short run: only the line at exit
	assert_equal "$(wc -l <"$WORK/stats")" 1
	run fig '[.stage, .lines_in, .messages_delivered, .lines_acknowledged, .dead_lettered, .delivery_failures, .retries, .in_flight]' "$WORK/stats"
	assert_output '["kafka-pub",303,302,303,1,0,0,0]'
	assert_equal "$(fig .topic_messages_delivered "$WORK/stats")" "{\"$TOPIC\":302}"
	assert_equal "$(fig '(.delivery_latency_seconds > 0 and .delivery_latency_seconds < 60)' "$WORK/stats")" true
	assert_equal "$(fig '(.lines_per_second > 0)' "$WORK/stats")" true
	assert_equal "$(fig '(.time | test("^[0-9-]{10}T[0-9:.]{12}Z$"))' "$WORK/stats")" true
	# the metrics file, written at exit: what promtool accepts, the same figures
	run promtool check metrics <"$WORK/pub.prom"
	assert_success
	assert_output ""
	grep -qx 'pgcdc_lines_in_total{stage="kafka-pub"} 303' "$WORK/pub.prom"
	grep -qx 'pgcdc_messages_delivered_total{stage="kafka-pub"} 302' "$WORK/pub.prom"
	grep -qx 'pgcdc_lines_acknowledged_total{stage="kafka-pub"} 303' "$WORK/pub.prom"
	grep -qx 'pgcdc_dead_lettered_total{stage="kafka-pub"} 1' "$WORK/pub.prom"
	grep -qx 'pgcdc_delivery_failures_total{stage="kafka-pub"} 0' "$WORK/pub.prom"
	grep -qx 'pgcdc_retries_total{stage="kafka-pub"} 0' "$WORK/pub.prom"
	grep -qx 'pgcdc_in_flight{stage="kafka-pub"} 0' "$WORK/pub.prom"
	grep -qx '# TYPE pgcdc_delivery_latency_seconds gauge' "$WORK/pub.prom"
	grep -qx "pgcdc_topic_messages_delivered_total{stage=\"kafka-pub\",topic=\"$TOPIC\"} 302" "$WORK/pub.prom"
	# no temporary left beside it
	assert_equal "$(ls "$WORK" | grep -c 'pub.prom')" 1
}

@test "--topic-prefix and --metrics: messages delivered per topic, a null-key line's copies each" {
	P="cdc$BATS_TEST_NUMBER"
	kafka_topic "$P.public.a" 3
	{ tables 9; echo '{"table":"public.a","key":null}'; } >"$WORK/in"
	run --separate-stderr kafka-pub --topic-prefix="$P" -k key --metrics="$WORK/pub.prom" --stats=60 <"$WORK/in"
	assert_success
	assert_equal "$(fig '[.lines_in, .lines_acknowledged, .messages_delivered]' <(echo "$stderr"))" '[10,10,12]'
	assert_equal "$(fig '.topic_messages_delivered | to_entries | sort_by(.key) | from_entries' <(echo "$stderr"))" \
		"{\"$P.inv.c\":3,\"$P.public.a\":6,\"$P.public.b\":3}"
	assert_equal "$(read_topic "$P.public.a" | wc -l)" 6
	run promtool check metrics <"$WORK/pub.prom"
	assert_success
	assert_equal "$(grep '^pgcdc_topic_messages_delivered_total' "$WORK/pub.prom" | sort)" \
"pgcdc_topic_messages_delivered_total{stage=\"kafka-pub\",topic=\"$P.inv.c\"} 3
pgcdc_topic_messages_delivered_total{stage=\"kafka-pub\",topic=\"$P.public.a\"} 6
pgcdc_topic_messages_delivered_total{stage=\"kafka-pub\",topic=\"$P.public.b\"} 3"
}

@test "SIGUSR1: a line on demand, on stderr, while it waits for input" {
	mkfifo "$WORK/fifo"
	kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" <"$WORK/fifo" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/fifo"
	events 40 >&4
	wait_for 10 '[ "$(cat "$WORK/ack" 2>/dev/null)" = 40 ]'
	sleep 0.2
	kill -USR1 $BG
	wait_for 10 'grep -q "^{\"stage\":\"kafka-pub\"" "$WORK/err"'
	run fig '[.lines_in, .messages_delivered, .lines_acknowledged, .dead_lettered, .in_flight]' "$WORK/err"
	assert_output '[40,40,40,0,0]'
	assert_equal "$(fig .topic_messages_delivered "$WORK/err")" "{\"$TOPIC\":40}"
	exec 4>&-
	wait $BG
	BG=
	# no --stats: no line at exit, only the one asked for, and nothing else
	assert_equal "$(grep -c '^{"stage"' "$WORK/err")" 1
	assert_equal "$(grep -vc '^{"stage"' "$WORK/err")" 0
	assert_equal "$(read_back | wc -l)" 40
}

@test "SIGHUP opens the dead-letter file again by name: logrotate's move is followed by a new file, nothing lost" {
	mkfifo "$WORK/fifo"
	mkdir -m 700 "$WORK/d"
	kafka-pub -t "$TOPIC" -k key --dlq="$WORK/d/dlq" <"$WORK/fifo" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/fifo"
	printf '%s\n' 'bad 1' '{"key":1}' >&4
	wait_for 10 '[ -s "$WORK/d/dlq" ]'
	mv "$WORK/d/dlq" "$WORK/d/dlq.1"
	kill -HUP $BG
	sleep 0.5
	printf '%s\n' 'bad 2' '{"key":2}' >&4
	exec 4>&-
	wait $BG
	BG=
	assert_equal "$(jq -r .line "$WORK/d/dlq.1")" 'bad 1'
	assert_equal "$(jq -r .line "$WORK/d/dlq")" 'bad 2'
	assert_equal "$(stat -c %a "$WORK/d/dlq")" 600
	assert_equal "$(read_back | wc -l)" 2
	assert_equal "$(cat "$WORK/err")" ""
}

@test "systemd's notify socket: READY=1, STATUS= with the counts, WATCHDOG=1 while idle, STOPPING=1" {
	socat -u UNIX-RECV:"$WORK/notify" - >"$WORK/heard" 2>"$WORK/socat.err" 3>&- &
	SOCAT=$!
	wait_for 10 '[ -S "$WORK/notify" ]'
	mkfifo "$WORK/fifo"
	NOTIFY_SOCKET=$WORK/notify WATCHDOG_USEC=400000 kafka-pub -t "$TOPIC" -k key --ack="$WORK/ack" \
		<"$WORK/fifo" 2>"$WORK/err" 3>&- &
	BG=$!
	exec 4>"$WORK/fifo"
	wait_for 10 'grep -q "^READY=1" "$WORK/heard"'
	events 20 >&4
	echo 'not json' >&4
	wait_for 20 'grep -qx "STATUS=21 lines read, 20 messages delivered, 1 dead-lettered, 0 in flight" "$WORK/heard"'
	# idle, it still tells the watchdog it lives: every 200 ms
	local before
	before=$(grep -c '^WATCHDOG=1' "$WORK/heard")
	sleep 1
	[ "$(grep -c '^WATCHDOG=1' "$WORK/heard")" -ge $((before + 3)) ]
	exec 4>&-
	wait $BG
	BG=
	wait_for 10 'grep -q "^STOPPING=1" "$WORK/heard"'
	kill $SOCAT
	assert_equal "$(head -n 2 "$WORK/heard")" "READY=1
STATUS=waiting for input"
	assert_equal "$(cat "$WORK/ack")" 21
	assert_equal "$(grep -c '"error"' "$WORK/err")" 1
}

@test "a stats file that cannot be opened: one error and exit 1, nothing read" {
	run --separate-stderr kafka-pub -t "$TOPIC" --stats=1 --stats-file=/nonexistent/stats <<<'{"n":1}'
	assert_failure 1
	assert_equal "$stderr" 'kafka-pub: cannot open stats file "/nonexistent/stats": No such file or directory'
	assert_equal "$(read_back | wc -l)" 0
}
