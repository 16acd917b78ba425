#!/usr/bin/env bats
# kafka-sub against a real Apache Kafka broker, fed by kcat.

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
	TOPIC="sub_${BATS_TEST_NUMBER}"
	GROUP="g_${BATS_TEST_NUMBER}"
	WORK=$(mktemp -d)
}

teardown() {
	[ -n "${BG:-}" ] && kill -9 $BG 2>/dev/null
	[ -n "${BG2:-}" ] && kill -9 $BG2 2>/dev/null
	rm -rf "$WORK"
}

lines() {
	awk -v lo="$1" -v hi="$2" 'BEGIN {
		for (i = lo; i <= hi; i++)
			printf "{\"n\":%d,\"s\":\"ü \\\"q\\\" \\\\n\\t\"}\n", i
	}'
}

produce() {
	kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" "$@"
}

sub() {
	kafka-sub -t "$TOPIC" -g "$GROUP" "$@"
}

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr kafka-sub --help
	assert_success
	assert_line --index 0 "Usage: kafka-sub [OPTION]... -t TOPIC..."
}

@test "--help and --version exit 1 when standard output cannot be written" {
	run --separate-stderr sh -c 'kafka-sub --help >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "kafka-sub: cannot write the help: No space left on device"
	run --separate-stderr sh -c 'kafka-sub --version >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "kafka-sub: cannot write the version: No space left on device"
}

@test "usage errors exit 2 with a hint" {
	run --separate-stderr kafka-sub
	assert_failure 2
	assert_equal "${stderr_lines[0]}" "kafka-sub: error: no topic given (use -t TOPIC)"
	run --separate-stderr kafka-sub -t x -o middle
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'kafka-sub: error: invalid value "middle" for option -o (beginning, end, stored, OFFSET, -N or s@MS)'
	assert_equal "${stderr_lines[1]}" 'Try "kafka-sub --help" for more information.'
	for bad in -0 - s@ s@-5 s@12x 12x 99999999999999999999 +5; do
		run --separate-stderr kafka-sub -t x -o "$bad"
		assert_failure 2
		assert_equal "${stderr_lines[0]}" "kafka-sub: error: invalid value \"$bad\" for option -o (beginning, end, stored, OFFSET, -N or s@MS)"
	done
	run --separate-stderr kafka-sub -t x -c 0
	assert_failure 2
}

@test "kcat-produced messages come out byte-identical, one per line" {
	lines 1 2000 >"$WORK/in"
	produce <"$WORK/in"
	run --separate-stderr sub -o beginning -e
	assert_success
	assert_equal "$stderr" ""
	printf '%s\n' "${lines[@]}" | cmp - "$WORK/in"
}

@test "every partition of several topics, with -e exiting at the end" {
	kafka_topic "$TOPIC" 4
	kafka_topic "${TOPIC}_b" 2
	lines 1 500 | produce -k k1
	lines 501 1000 | produce -k k2
	lines 1001 1200 | kcat -b "$KAFKA_BROKERS" -P -t "${TOPIC}_b" -k k3
	run --separate-stderr kafka-sub -t "$TOPIC" -t "${TOPIC}_b" -g "$GROUP" -e
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]}" | sort)" "$(lines 1 1200 | sort)"
}

@test "stored offsets: a second run of the group reads only what is new" {
	lines 1 100 | produce
	sub -e >"$WORK/1"
	lines 101 150 | produce
	sub -e >"$WORK/2"
	assert_equal "$(wc -l <"$WORK/1")" 100
	cmp "$WORK/2" <(lines 101 150)
}

@test "-o end skips what is there; -c stops after N messages" {
	lines 1 10 | produce
	# -v says when the partition is assigned, and librdkafka's topic debugging
	# when "end" has become an offset: lines produced after that are read
	kafka-sub -t "$TOPIC" -g "$GROUP" -o end -v -X debug=topic >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 30 'grep -q "^kafka-sub: debug: assigned $TOPIC \[0\]$" "$WORK/err"'
	wait_for 30 'grep -q "Partition $TOPIC \[0\] start fetching at offset 10$" "$WORK/err"'
	lines 11 20 | produce
	wait_for 20 '[ "$(wc -l <"$WORK/out")" = 10 ]'
	kill -TERM $BG
	wait $BG
	BG=
	cmp "$WORK/out" <(lines 11 20)
	run kafka-sub -t "$TOPIC" -g "other_$GROUP" -o beginning -c 5
	assert_success
	assert_equal "${#lines[@]}" 5
}

@test "values that would break the framing are dead-lettered; tombstones are skipped" {
	printf '{"n":1}\n' | produce
	printf 'not json' | produce
	printf '{"a":\n1}~' | produce -D '~'
	printf '' | produce -Z
	printf '{"n":2}\n' | produce
	run --separate-stderr sub -e -o beginning
	assert_success
	assert_output '{"n":1}
{"n":2}'
	assert_equal "${stderr_lines[0]}" "{\"error\":\"not JSON: unexpected character\",\"topic\":\"$TOPIC\",\"partition\":0,\"offset\":1,\"line\":\"not json\"}"
	assert_equal "${stderr_lines[1]}" "{\"error\":\"value holds a newline\",\"topic\":\"$TOPIC\",\"partition\":0,\"offset\":2,\"line\":\"{\\\"a\\\":\\n1}\"}"
	assert_equal "${#stderr_lines[@]}" 2
}

@test "--origin adds each message's topic, partition and offset as the last member; what is no object is dead-lettered" {
	kafka_topic "$TOPIC" 2
	printf '%s\n' '{"n":1}' '{}' ' { "b" : [1,{"c":"}"}] } ' '{"kafka":{"topic":"x"}}' | produce -p 1
	printf '%s\n' '[1]' '"s"' '{"n":2}' | produce -p 0
	run --separate-stderr sub -e -o beginning --origin
	assert_success
	assert_equal "$(grep -v '"n":2' <<<"$output")" \
"{\"n\":1,\"kafka\":{\"topic\":\"$TOPIC\",\"partition\":1,\"offset\":0}}
{\"kafka\":{\"topic\":\"$TOPIC\",\"partition\":1,\"offset\":1}}
 { \"b\" : [1,{\"c\":\"}\"}] ,\"kafka\":{\"topic\":\"$TOPIC\",\"partition\":1,\"offset\":2}} 
{\"kafka\":{\"topic\":\"x\"},\"kafka\":{\"topic\":\"$TOPIC\",\"partition\":1,\"offset\":3}}"
	assert_line "{\"n\":2,\"kafka\":{\"topic\":\"$TOPIC\",\"partition\":0,\"offset\":2}}"
	assert_equal "${#lines[@]}" 5
	# every line is JSON whose last member kafka is the message's (jq keeps the last of a repeated name)
	assert_equal "$(jq -c .kafka <<<"$output" | sort)" \
"$(printf '{"topic":"%s","partition":%d,"offset":%d}\n' "$TOPIC" 0 2 "$TOPIC" 1 0 "$TOPIC" 1 1 "$TOPIC" 1 2 "$TOPIC" 1 3)"
	assert_equal "$stderr" \
"{\"error\":\"not a JSON object (--origin adds a member to each)\",\"topic\":\"$TOPIC\",\"partition\":0,\"offset\":0,\"line\":\"[1]\"}
{\"error\":\"not a JSON object (--origin adds a member to each)\",\"topic\":\"$TOPIC\",\"partition\":0,\"offset\":1,\"line\":\"\\\"s\\\"\"}"
}

@test "--dlq writes dead letters to a file and the offsets past them are committed" {
	printf 'bad' | produce
	printf '{"n":1}\n' | produce
	sub -e --dlq="$WORK/dlq" >"$WORK/out"
	assert_equal "$(cat "$WORK/out")" '{"n":1}'
	assert_equal "$(grep -c '"line":"bad"' "$WORK/dlq")" 1
	run sub -e
	assert_output ""
}

@test "with --ack only acknowledged lines are committed" {
	lines 1 100 | produce
	# a downstream that acknowledges the first 40 lines only
	kafka-sub -t "$TOPIC" -g "$GROUP" -e --ack="$WORK/ack" --ack-timeout=1000 >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 20 '[ "$(wc -l <"$WORK/out")" = 100 ]'
	echo 40 >"$WORK/ack.new" && mv "$WORK/ack.new" "$WORK/ack"
	wait $BG
	BG=
	grep -q "downstream acknowledged 40 of 100 lines" "$WORK/err"
	run sub -e
	assert_equal "${#lines[@]}" 60
	assert_equal "${lines[0]}" "$(lines 41 41)"
}

@test "--window bounds the lines written but not acknowledged" {
	lines 1 300 | produce
	kafka-sub -t "$TOPIC" -g "$GROUP" --ack="$WORK/ack" --window=50 >"$WORK/out" 2>/dev/null 3>&- &
	BG=$!
	wait_for 20 '[ "$(wc -l <"$WORK/out")" -ge 50 ]'
	sleep 1
	n=$(wc -l <"$WORK/out")
	[ "$n" -lt 300 ]
	echo "$n" >"$WORK/ack.new" && mv "$WORK/ack.new" "$WORK/ack"
	wait_for 20 '[ "$(wc -l <"$WORK/out")" -gt "$n" ]'
	kill -TERM $BG
	wait $BG || true
	BG=
}

@test "-o takes an absolute offset, -N from the end and s@MS, as kcat does; a second run resumes" {
	lines 1 10 | produce
	run sub -o 3 -e
	assert_success
	assert_output "$(lines 4 10)"
	run kafka-sub -t "$TOPIC" -g "tail_$GROUP" -o -2 -e
	assert_output "$(lines 9 10)"
	# past the end: auto.offset.reset (earliest), as kcat does
	run kafka-sub -t "$TOPIC" -g "past_$GROUP" -o 50 -e
	assert_output "$(lines 1 10)"
	# a timestamp between two produce runs starts at the first message after it
	sleep 0.2
	at=$(date +%s%3N)
	sleep 0.2
	lines 11 15 | produce
	run --separate-stderr kafka-sub -t "$TOPIC" -g "time_$GROUP" -o "s@$at" -e -v
	assert_success
	assert_output "$(lines 11 15)"
	grep -qF "kafka-sub: debug: $TOPIC [0] starts at offset 10 (-o s@$at)" <<<"$stderr"
	# a time after the last message: its end, where the next message will be
	run kafka-sub -t "$TOPIC" -g "late_$GROUP" -o "s@$((at + 3600000))" -e
	assert_success
	assert_output ""
	# the groups committed their offsets: without -o (stored) each resumes there
	lines 16 16 | produce
	run sub -e
	assert_output "$(lines 11 16)"
	run kafka-sub -t "$TOPIC" -g "time_$GROUP" -e
	assert_output "$(lines 16 16)"
}

# ack_sink GOT ACK EVERY [PAUSE|idle]: a downstream that appends each line
# to GOT and acknowledges in ACK every EVERY lines, after a pause of PAUSE
# seconds (a batching writer), or with idle also whenever its input has
# nothing more ready (no line waits for an ack); and at the end of its input
ack_sink() {
	local n=0
	while IFS= read -r line; do
		printf '%s\n' "$line" >>"$1"
		n=$((n + 1))
		if [ $((n % $3)) = 0 ] || { [ "${4:-}" = idle ] && ! read -t 0; }; then
			[ "${4:-idle}" = idle ] || sleep "$4"
			echo $n >"$2.new" && mv "$2.new" "$2"
		fi
	done
	echo $n >"$2.new" && mv "$2.new" "$2"
}

# rebalancing STRATEGY: three members of a group on 6 partitions join and
# leave one by one while 12,000 lines are produced; members leave by TERM,
# which commits what their downstream acknowledged, so each line is
# written exactly once across them
rebalancing() {
	local strategy=$1 i
	kafka_topic "$TOPIC" 6
	member() {
		# a small window: a revoked member waits at most 5 s for its
		# downstream's acks, which a busy machine's shell loop gives in time
		# (in a shell of its own: bats traps each command of its own shell,
		# which makes a loop many times slower)
		( kafka-sub -t "$TOPIC" -g "$GROUP" -X partition.assignment.strategy="$strategy" -v \
			--window=300 --ack="$WORK/ack$1" 2>"$WORK/err$1" |
			bash -c "$(declare -f ack_sink); ack_sink $WORK/got$1 $WORK/ack$1 100 idle" ) 3>&- &
	}
	got() { cat "$WORK"/got* 2>/dev/null | wc -l; }
	( for i in $(seq 0 23); do lines $((i * 500 + 1)) $((i * 500 + 500)) | produce; sleep 0.25; done ) 3>&- &
	BG=$!
	member 1
	wait_for 30 '[ "$(got)" -gt 1000 ]'
	member 2
	wait_for 30 'grep -q "assigned $TOPIC" "$WORK/err2"'
	member 3
	wait_for 30 'grep -q "assigned $TOPIC" "$WORK/err3"'
	# a member's exit waits for its last acks and leaves the group; with the
	# cooperative protocol's refused commits (librdkafka 4059) and the
	# sanitizers that may take most of a session timeout
	pkill -TERM -f -- "--ack=$WORK/ack2"
	wait_for 90 '! pgrep -f -- "--ack=$WORK/ack2" >/dev/null'
	wait $BG
	BG=
	pkill -TERM -f -- "--ack=$WORK/ack3"
	wait_for 90 '! pgrep -f -- "--ack=$WORK/ack3" >/dev/null'
	wait_for 60 '[ "$(sort -u "$WORK"/got* | wc -l)" -ge 12000 ]'
	pkill -TERM -f -- "--ack=$WORK/ack1"
	wait_for 90 '! pgrep -f -- "--ack=$WORK/ack1" >/dev/null'
	# none lost; each written once, unless librdkafka before 2.10 dropped an
	# assignment after a commit that raced a cooperative rebalance (#4059):
	# its partitions are read again from the last commit
	# each line once, unless a commit was refused (below) or a revoked
	# member's downstream did not acknowledge in time: then at least once
	local exact=1
	! grep -qE "generation id is not valid|not yet acknowledged downstream|downstream acknowledged" "$WORK"/err* || exact=0
	sort -u "$WORK"/got* | cmp - <(lines 1 12000 | sort)
	[ "$exact" = 0 ] || sort "$WORK"/got* | cmp - <(lines 1 12000 | sort)
	for i in 1 2 3; do
		grep -q "assigned $TOPIC" "$WORK/err$i"
		run grep -E "kafka-sub: error|must be made using" "$WORK/err$i"
		assert_failure 1
	done
	# and the group has committed them all (after such a refused commit,
	# what it was to commit is read again)
	run kafka-sub -t "$TOPIC" -g "$GROUP" -e
	assert_success
	[ "$exact" = 0 ] || assert_output ""
}

@test "cooperative-sticky: three members join and leave under load; no line lost, each acknowledged one committed" {
	rebalancing cooperative-sticky
}

@test "eager (range, roundrobin): three members join and leave under load; every line exactly once" {
	rebalancing range,roundrobin
}

@test "at least once under kill -9: every message arrives after a restart" {
	lines 1 3000 | produce
	( sub --ack="$WORK/ack" | ack_sink "$WORK/got" "$WORK/ack" 50 ) 3>&- &
	BG=$!
	wait_for 30 '[ "$(wc -l <"$WORK/got" 2>/dev/null || echo 0)" -gt 500 ]'
	pkill -9 -f "kafka-sub -t $TOPIC -g $GROUP"
	wait $BG || true
	BG=
	before=$(wc -l <"$WORK/got")
	sub -e --ack="$WORK/ack" | ack_sink "$WORK/got" "$WORK/ack" 50
	[ "$(wc -l <"$WORK/got")" -gt "$before" ]
	sort -u "$WORK/got" | cmp - <(lines 1 3000 | sort -u)
}

@test "when its reader goes away it exits 1 and leaves the group at once" {
	lines 1 5000 | produce
	run bash -c "set -o pipefail; kafka-sub -t $TOPIC -g $GROUP 2>'$WORK/err' | head -n 3 >/dev/null"
	assert_failure 1
	grep -qE '^kafka-sub: (write error: Broken pipe|standard output closed by the reader)$' "$WORK/err"
	# a new member gets the partition without waiting out the session timeout
	run timeout 15 kafka-sub -t "$TOPIC" -g "$GROUP" -e
	assert_success
}

@test "a topic pattern needs -g; a pattern librdkafka cannot compile is a usage error" {
	run --separate-stderr timeout 20 kafka-sub -t '^cdc\..*'
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'kafka-sub: error: a topic pattern (-t ^...) needs a group (-g ID)'
	assert_equal "${stderr_lines[1]}" 'Try "kafka-sub --help" for more information.'
	run --separate-stderr timeout 20 kafka-sub -t "$TOPIC" -t '^cdc\.(' -g "$GROUP"
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'kafka-sub: error: invalid topic pattern among -t (librdkafka regular expressions)'
}

@test "-t '^cdc\..*' reads every matching topic, and within 10 s one created after it started" {
	kafka_topic cdc.public.a 2
	lines 1 50 | kcat -b "$KAFKA_BROKERS" -P -t cdc.public.a -k k1
	lines 51 100 | kcat -b "$KAFKA_BROKERS" -P -t cdc.public.a -k k2
	# made by the broker on first use, as kafka-pub --topic-prefix does
	lines 101 150 | kcat -b "$KAFKA_BROKERS" -P -t cdc.public.b
	# not matching
	lines 151 160 | kcat -b "$KAFKA_BROKERS" -P -t cdcx.public.c
	lines 161 170 | kcat -b "$KAFKA_BROKERS" -P -t x.cdc.public.d
	kafka-sub -t '^cdc\..*' -g "$GROUP" >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 30 '[ "$(wc -l <"$WORK/out")" -ge 150 ]'
	lines 171 200 | kcat -b "$KAFKA_BROKERS" -P -t cdc.public.late
	wait_for 10 '[ "$(wc -l <"$WORK/out")" -ge 180 ]'
	sleep 1
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(cat "$WORK/err")" ""
	sort "$WORK/out" | cmp - <({ lines 1 150; lines 171 200; } | sort)
}

@test "a pattern that matches no topic yet waits for one: the first topic made later is read, nothing is an error" {
	P="none$BATS_TEST_NUMBER"
	kafka-sub -t "^$P\\..*" -g "$GROUP" >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	# long enough for the consumer to join and learn that nothing matches
	sleep 3
	kill -0 $BG
	lines 1 20 | kcat -b "$KAFKA_BROKERS" -P -t "$P.public.first"
	wait_for 15 '[ "$(wc -l <"$WORK/out")" -ge 20 ]'
	kill -TERM $BG
	wait $BG
	BG=
	assert_equal "$(cat "$WORK/err")" ""
	assert_equal "$(cat "$WORK/out")" "$(lines 1 20)"
}

@test "names and patterns mixed: acknowledged lines of every topic are committed, a restart resumes after them" {
	P="cdc$BATS_TEST_NUMBER"
	kafka_topic "$P.a1" 3
	lines 1 300 | awk '{ print "k" NR % 7 ":" $0 }' | kcat -b "$KAFKA_BROKERS" -P -t "$P.a1" -K:
	lines 301 400 | kcat -b "$KAFKA_BROKERS" -P -t "$P.a2"
	lines 401 500 | kcat -b "$KAFKA_BROKERS" -P -t "$P.b"
	lines 501 510 | kcat -b "$KAFKA_BROKERS" -P -t "$P.c"
	# a downstream that acknowledges the first 200 lines only
	# $P.a2 is matched by the pattern too, and read once
	kafka-sub -t "^$P\\.a" -t "$P.b" -t "$P.a2" -g "$GROUP" -e --ack="$WORK/ack" --ack-timeout=5000 \
		>"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 30 '[ "$(wc -l <"$WORK/out")" -ge 500 ]'
	echo 200 >"$WORK/ack.new" && mv "$WORK/ack.new" "$WORK/ack"
	wait $BG
	BG=
	assert_equal "$(cat "$WORK/err")" "kafka-sub: warning: downstream acknowledged 200 of 500 lines; the rest will be delivered again"
	sort "$WORK/out" | cmp - <(lines 1 500 | sort)
	# the next run gets exactly the lines not acknowledged, from each topic and partition
	run --separate-stderr kafka-sub -t "^$P\\.a" -t "$P.b" -t "$P.a2" -g "$GROUP" -e
	assert_success
	assert_equal "${#lines[@]}" 300
	printf '%s\n' "${lines[@]}" | sort | cmp - <(tail -n +201 "$WORK/out" | sort)
}

@test "a full prefetch queue is refilled as soon as it drains, not a second later" {
	kafka_topic "$TOPIC" 1
	# 6,000 messages in batches of 50; each fetch of 10,000 bytes fills the
	# queue past queued.min.messages=50, after which librdkafka 2.0 fetches
	# again only a second later: 17 fetches, over 15 s, unless kafka-sub
	# wakes the fetcher
	lines 1 6000 | produce -X batch.num.messages=50
	SECONDS=0
	run --separate-stderr sub -o beginning -e -X queued.min.messages=50 -X fetch.message.max.bytes=10000
	assert_success
	assert_equal "${#lines[@]}" 6000
	echo "took $SECONDS s"
	[ "$SECONDS" -le 6 ]
}

@test "a full window opened by downstream's acks is read on at once, not a second later" {
	kafka_topic "$TOPIC" 1
	# 6,000 lines through a window of 500 acknowledged 500 at a time: 12
	# windows of about 0.3 s; over 12 s if each resumed reading only at the
	# next wake-up (a report's, or librdkafka's broker thread's once a
	# second).  The sink runs in a shell of its own: bats traps each command
	lines 1 6000 | produce
	SECONDS=0
	kafka-sub -t "$TOPIC" -g "$GROUP" -o beginning -c 6000 --window=500 --ack="$WORK/ack" |
		bash -c "$(declare -f ack_sink); ack_sink $WORK/got $WORK/ack 500 0.2"
	echo "took $SECONDS s"
	lines 1 6000 | cmp - "$WORK/got"
	[ "$SECONDS" -le 8 ]
}

@test "--stats, --metrics and SIGUSR1: what was read, written and acknowledged, and the consumer lag" {
	lines 1 300 | produce
	# a downstream that acknowledges nothing: the window of 50 stops the reading
	kafka-sub -t "$TOPIC" -g "$GROUP" --ack="$WORK/ack" --window=50 --stats-file="$WORK/stats" \
		--metrics="$WORK/sub.prom" >"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 20 '[ "$(wc -l <"$WORK/out")" = 50 ]'
	sleep 0.5
	kill -USR1 $BG
	wait_for 10 '[ -s "$WORK/stats" ]'
	run jq -c '[.messages_in, .lines_out, .lines_acknowledged, .dead_lettered, .partitions, .consumer_lag]' "$WORK/stats"
	assert_output '[50,50,0,0,1,250]'
	# and per partition: an object of "topic/partition" keys
	assert_equal "$(jq -c .partition_lag "$WORK/stats")" "{\"$TOPIC/0\":250}"
	# nothing acknowledged, nothing committed: no position yet
	assert_equal "$(jq -c .partition_committed_offset "$WORK/stats")" null
	echo 50 >"$WORK/ack.new" && mv "$WORK/ack.new" "$WORK/ack"
	wait_for 20 '[ "$(wc -l <"$WORK/out")" = 100 ]'
	kill -TERM $BG
	wait $BG || true
	BG=
	# the metrics file, written at exit: what promtool accepts
	run promtool check metrics <"$WORK/sub.prom"
	assert_success
	grep -qx 'pgcdc_lines_acknowledged_total{stage="kafka-sub"} 50' "$WORK/sub.prom"
	grep -qx 'pgcdc_consumer_lag{stage="kafka-sub"} 200' "$WORK/sub.prom"
	grep -qx "pgcdc_partition_lag{stage=\"kafka-sub\",topic=\"$TOPIC\",partition=\"0\"} 200" "$WORK/sub.prom"
	grep -qx "pgcdc_partition_committed_offset{stage=\"kafka-sub\",topic=\"$TOPIC\",partition=\"0\"} 50" "$WORK/sub.prom"
	# at the end of a run with -e and --stats: a line with the lag at 0
	run --separate-stderr kafka-sub -t "$TOPIC" -g "other_$GROUP" -o beginning -e --stats=60
	assert_success
	assert_equal "$(jq -c '[.messages_in, .lines_out, .consumer_lag]' <<<"$stderr")" '[300,300,0]'
}

@test "systemd's notify socket: READY=1 once subscribed, STATUS= with the counts and lag, WATCHDOG=1, STOPPING=1; SIGHUP opens the dead-letter file again" {
	lines 1 30 | produce
	socat -u UNIX-RECV:"$WORK/notify" - >"$WORK/heard" 2>/dev/null 3>&- &
	BG2=$!
	wait_for 10 '[ -S "$WORK/notify" ]'
	mkdir -m 700 "$WORK/d"
	# kafka-sub itself in the background, not a shell running it: the signals are for it
	NOTIFY_SOCKET=$WORK/notify WATCHDOG_USEC=400000 kafka-sub -t "$TOPIC" -g "$GROUP" -o beginning --dlq="$WORK/d/dlq" \
		>"$WORK/out" 2>"$WORK/err" 3>&- &
	BG=$!
	wait_for 10 'grep -q "^READY=1" "$WORK/heard"'
	wait_for 20 '[ "$(wc -l <"$WORK/out")" = 30 ]'
	printf 'bad 1' | produce
	wait_for 10 '[ -s "$WORK/d/dlq" ]'
	wait_for 10 'grep -qx "STATUS=31 messages read, 30 lines written; 0 behind" "$WORK/heard"' ||
		fail "STATUS: $(grep STATUS= "$WORK/heard" | tail -n 2)"
	local before
	before=$(grep -c '^WATCHDOG=1' "$WORK/heard")
	sleep 1
	[ "$(grep -c '^WATCHDOG=1' "$WORK/heard")" -ge $((before + 3)) ]
	mv "$WORK/d/dlq" "$WORK/d/dlq.1"
	kill -HUP $BG
	sleep 0.5
	printf 'bad 2' | produce
	wait_for 10 '[ -s "$WORK/d/dlq" ]'
	kill -TERM $BG
	wait $BG
	BG=
	wait_for 10 'grep -q "^STOPPING=1" "$WORK/heard"'
	kill $BG2
	BG2=
	assert_equal "$(head -n 2 "$WORK/heard")" "READY=1
STATUS=subscribed, waiting for partitions"
	assert_equal "$(jq -r .line "$WORK/d/dlq.1")" 'bad 1'
	assert_equal "$(jq -r .line "$WORK/d/dlq")" 'bad 2'
	assert_equal "$(cat "$WORK/err")" ""
}

@test "--lag: each partition's committed offset, end and lag, as the brokers keep them, the group not joined" {
	kafka_topic "$TOPIC" 2
	lines 1 10 | produce -p 0
	lines 11 14 | produce -p 1
	# nothing committed yet: counted from the earliest offset
	run --separate-stderr kafka-sub --lag -g "$GROUP" -t "$TOPIC"
	assert_success
	assert_output "{\"topic\":\"$TOPIC\",\"partition\":0,\"committed\":null,\"end\":10,\"lag\":10}
{\"topic\":\"$TOPIC\",\"partition\":1,\"committed\":null,\"end\":4,\"lag\":4}"
	sub -e -o beginning >/dev/null
	lines 15 17 | produce -p 0
	# a pattern too, and the options that read are no matter
	run --separate-stderr kafka-sub --lag -g "$GROUP" -t "^$TOPIC\$" --ack="$WORK/ack" -e
	assert_success
	assert_output "{\"topic\":\"$TOPIC\",\"partition\":0,\"committed\":10,\"end\":13,\"lag\":3}
{\"topic\":\"$TOPIC\",\"partition\":1,\"committed\":4,\"end\":4,\"lag\":0}"
	assert_equal "$stderr" ""
	# the ack file was not touched: --lag is a look from outside
	assert_file_not_exists "$WORK/ack"
	run --separate-stderr kafka-sub --lag -g "$GROUP" -t "$TOPIC" -t nosuch_topic
	assert_failure 1
	assert_equal "$stderr" 'kafka-sub: topic "nosuch_topic" does not exist'
	assert_output ""
}

@test "a stats file that cannot be opened: one error and exit 1, nothing consumed" {
	lines 1 5 | produce
	run --separate-stderr kafka-sub -t "$TOPIC" -g "$GROUP" -o beginning -e --stats=1 --stats-file=/nonexistent/stats
	assert_failure 1
	assert_equal "$stderr" 'kafka-sub: cannot open stats file "/nonexistent/stats": No such file or directory'
	assert_output ""
}
