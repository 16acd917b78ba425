#!/usr/bin/env bats
# The man pages: every page has the sections the project requires and lints
# clean; the EXAMPLES of kafka-pub(1), kafka-sub(1), pg-cdc-tail(1),
# cdc-source(1) and cdc-sink(1) run, taken from the rendered pages, against a
# throwaway PostgreSQL and real Kafka brokers, and do what the pages say.
# (pg-upsert, order-sim and kafka-mock run theirs in their own suites.)

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	# fill the jar cache before two starts race to fill it
	kafka_fetch
	# Two brokers: the examples name their topics, and those of kafka-pub(1)
	# and kafka-sub(1) both use "demo", those of cdc-source(1) and
	# cdc-sink(1) both "orders_cdc".  Each starts under a directory of its
	# own, so that teardown_file finds it even if the start failed half way.
	local c pids=()
	for c in a b; do
		mkdir "$BATS_FILE_TMPDIR/kafka-$c"
		(
			TMPDIR=$BATS_FILE_TMPDIR/kafka-$c
			kafka_start >/dev/null && echo "$KAFKA_DIR $KAFKA_BROKERS" >"$TMPDIR/cluster"
		) 3>&- &
		pids+=($!)
	done
	pg_start
	make_source_template
	createdb -T template0 wh_template
	sql -d wh_template -f "$TOP/sql/warehouse.sql" >/dev/null
	for c in "${pids[@]}"; do
		wait "$c"
	done
	read -r KAFKA_DIR_A BROKERS_A <"$BATS_FILE_TMPDIR/kafka-a/cluster"
	read -r KAFKA_DIR_B BROKERS_B <"$BATS_FILE_TMPDIR/kafka-b/cluster"
	export KAFKA_DIR_A BROKERS_A KAFKA_DIR_B BROKERS_B
}

teardown_file() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	local d
	for d in "$BATS_FILE_TMPDIR"/kafka-*/pgcdc-kafka.*; do
		KAFKA_DIR=$d kafka_destroy
	done
	pg_destroy
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	# no example reaches a broker the test did not choose
	unset KAFKA_BROKERS KAFKA_DIR
	BG=()
	OUT=$BATS_TEST_TMPDIR/bg.out
	ERR=$BATS_TEST_TMPDIR/bg.err
	# the examples write their files in the current directory
	mkdir "$BATS_TEST_TMPDIR/ex"
	cd "$BATS_TEST_TMPDIR/ex" || return 1
}

# Kill whatever a test left running (BG: what it started and has not waited
# for): every process of each tree, listed before any is killed, so that
# none escapes by being reparented.
teardown() {
	local p
	for p in "${BG[@]}"; do
		# shellcheck disable=SC2046 # one argument per pid
		kill -9 $(tree "$p") 2>/dev/null
		wait "$p" 2>/dev/null
	done
	return 0
}

# tree PID: PID and every process under it
tree() {
	local c
	echo "$1"
	for c in $(pgrep -P "$1"); do
		tree "$c"
	done
}

# waited PID: PID has ended and was waited for; teardown leaves it alone
waited() {
	local p keep=()
	for p in "${BG[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	BG=("${keep[@]}")
}

# use_kafka a|b: point KAFKA_BROKERS (which the examples read) and KAFKA_DIR
# (which kafka.bash reads) at one of the two brokers
use_kafka() {
	case $1 in
	a) KAFKA_DIR=$KAFKA_DIR_A KAFKA_BROKERS=$BROKERS_A ;;
	b) KAFKA_DIR=$KAFKA_DIR_B KAFKA_BROKERS=$BROKERS_B ;;
	esac
	export KAFKA_DIR KAFKA_BROKERS
}

# start_mock: an in-memory broker for an example that needs only an address
start_mock() {
	mkfifo "$BATS_TEST_TMPDIR/addr"
	kafka-mock >"$BATS_TEST_TMPDIR/addr" 2>/dev/null 3>&- &
	MOCK=$!
	BG+=("$MOCK")
	read -r -t 10 KAFKA_BROKERS <"$BATS_TEST_TMPDIR/addr"
	export KAFKA_BROKERS
}

# page_file PAGE: the file of a page: "pg-upsert" is pg-upsert.1, a name
# with its section ("pgcdc-event.5") is itself
page_file() {
	case $1 in
	*.[1-9]) echo "$1" ;;
	*) echo "$1.1" ;;
	esac
}

# examples PAGE: the literal displays of the EXAMPLES section of man/PAGE.1
# as rendered, the text a reader copies, one display per element of EX
examples() {
	local line block=
	EX=()
	while IFS= read -r line; do
		if [[ $line == '           '* ]]; then
			block+=${line:11}$'\n'
		elif [ -n "$line" ] && [ -n "$block" ]; then
			EX+=("$block")
			block=
		fi
	done < <(mandoc -T ascii "$TOP/man/$(page_file "$1")" | col -bx | sed -n '/^EXAMPLES/,/^SEE ALSO/p')
}

# run_example SCRIPT [ENV ARGUMENT]...: run it with sh -e under env(1) with
# those arguments, 30 s at most
run_example() {
	run --separate-stderr env "${@:2}" timeout 30 sh -ec "$1" 3>&-
}

# start_example SCRIPT [ENV ARGUMENT]...: the same in the background, its
# output in $OUT and $ERR; EXPID is its pid
start_example() {
	env "${@:2}" timeout 60 sh -ec "$1" >"$OUT" 2>"$ERR" 3>&- &
	EXPID=$!
	BG+=("$EXPID")
}

# running NAME: the pids of NAME, a tool or a script of bin/, under the
# example started last
running() {
	local p argv
	for p in $(tree "$EXPID"); do
		mapfile -d '' argv <"/proc/$p/cmdline" 2>/dev/null || continue
		# a script runs as "bash /path/to/NAME ..."
		if [ "${argv[0]}" = "$1" ] || [ "${argv[1]:-}" = "$TOP/bin/$1" ]; then
			echo "$p"
		fi
	done
}

# stop_example NAME: SIGTERM to NAME under the example started last, then
# wait 30 s at most for the example to end; its exit status becomes STATUS
stop_example() {
	local pids
	pids=$(running "$1")
	[ -n "$pids" ] || fail "$1 is not running"
	# shellcheck disable=SC2086 # one argument per pid
	kill -TERM $pids
	wait_for 30 "! kill -0 $EXPID 2>/dev/null" || fail "the example did not stop"
	STATUS=0
	wait "$EXPID" || STATUS=$?
	waited "$EXPID"
}

# check_dry_run SCRIPT: SCRIPT is "$ COMMAND" and what it prints; so it does
check_dry_run() {
	local cmd=${1%%$'\n'*} want=${1#*$'\n'}
	[[ $cmd == '$ '* ]] || fail "no command in: $1"
	# the page shows the output without KAFKA_BROKERS in the environment
	# (with it, a first line exports it)
	run_example "${cmd:2}" -u KAFKA_BROKERS
	assert_success
	assert_output "${want%$'\n'}"
	assert_equal "$stderr" ""
}

# check_service_example SCRIPT: the systemd example copies a unit of the
# tree, under the name it then enables
check_service_example() {
	local unit name
	local re=$'^cp (systemd/[^ ]+) /etc/systemd/system/\nsystemctl daemon-reload\nsystemctl enable --now ([^\n]+)\n$'
	[[ $1 =~ $re ]] || fail "not the service example expected: $1"
	unit=${BASH_REMATCH[1]}
	assert_file_exists "$TOP/$unit"
	for name in ${BASH_REMATCH[2]}; do
		case $name in
		*@*) assert_equal "${name%%@*}@.service" "${unit#systemd/}" ;;
		*) assert_equal "$name.service" "${unit#systemd/}" ;;
		esac
	done
}

# shown_dead_letter PAGE: the dead-letter record the page's DESCRIPTION shows
shown_dead_letter() {
	mandoc -T ascii "$TOP/man/$1.1" | col -bx | sed -n 's/^ *\({"error":.*\)$/\1/p' | head -n 1
}

# batch_codecs DIR: the compression codec of every record batch in the log
# segments of a partition's directory, one per line (0 none ... 3 lz4),
# read from the batch headers (attributes at byte 21, length at byte 8)
batch_codecs() {
	local f off size len attr
	for f in "$1"/*.log; do
		off=0
		size=$(stat -c %s "$f")
		while [ "$off" -lt "$size" ]; do
			len=$(od -An -tu4 --endian=big -j $((off + 8)) -N 4 "$f" | tr -d ' ')
			attr=$(od -An -tu2 --endian=big -j $((off + 21)) -N 2 "$f" | tr -d ' ')
			echo $((attr & 7))
			off=$((off + 12 + len))
		done
	done
}

# new_shop: the source database "shop" the examples name, with 300 changes
new_shop() {
	dropdb --if-exists --force shop 2>/dev/null
	createdb -T src_template shop
	order-sim -d dbname=shop -q --clients 2 --count 300 --rate 0 \
		--update-ratio 0.3 --delete-ratio 0.1 --seed 3
}

# log_ids [FROM]: the change-log ids of shop above FROM (default 0), in order
log_ids() {
	sql -d shop -c "SELECT id FROM orders_cdc_log WHERE id > ${1:-0} ORDER BY id"
}

# order_ids: the ids of the orders in shop, sorted as sort(1) sorts them
order_ids() {
	sql -d shop -c "SELECT id FROM orders" | sort
}

# topic_pos TOPIC: the pos of each change in the topic (schema events left
# out), in numeric order
topic_pos() {
	kcat -b "$KAFKA_BROKERS" -C -t "$1" -e -q | jq -r 'select(.op != "s") | .pos' | sort -n
}

ORDER_COLS="user_id, status, amount_cents, currency, country, created_at, updated_at, version"

# sink_converged: the warehouse "dw" (sql/warehouse.sql, the original's
# shape: the source's id is order_id) holds the orders of "shop", and a
# tombstone for each order deleted from it
sink_converged() {
	[ "$(sql -d dw -c "SELECT order_id, $ORDER_COLS FROM analytics.fct_orders ORDER BY order_id")" = \
		"$(sql -d shop -c "SELECT id, $ORDER_COLS FROM orders ORDER BY id")" ] &&
		[ "$(sql -d dw -c "SELECT (key->>'order_id')::uuid AS id FROM analytics.cdc_tombstones ORDER BY id")" = \
			"$(sql -d shop -c "SELECT (key->>'id')::uuid AS id FROM orders_cdc_log WHERE op = 'd'
				EXCEPT SELECT id FROM orders ORDER BY id")" ]
}

# dead_letters: how many lines the sink instances dead-lettered
dead_letters() {
	cat "$STATE"/sink-*-dead-letters.ndjson 2>/dev/null | wc -l
}

# ------------------------------------------------------------- every page

@test "every page has the required sections, in order, and passes mandoc -T lint" {
	local page have want problems=
	want='NAME|SYNOPSIS|DESCRIPTION|OPTIONS|ENVIRONMENT|FILES|EXIT STATUS|EXAMPLES|SEE ALSO'
	for page in "$TOP"/man/*.1; do
		run mandoc -T lint -W warning "$page"
		[ "$status" -eq 0 ] && [ -z "$output" ] ||
			problems+="${page##*/}: mandoc -T lint: $output"$'\n'
		# the required ones among its sections (others may come between)
		have=$(sed -n 's/^\.Sh  *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$page" |
			grep -Fx -e NAME -e SYNOPSIS -e DESCRIPTION -e OPTIONS -e ENVIRONMENT \
				-e FILES -e 'EXIT STATUS' -e EXAMPLES -e 'SEE ALSO' | paste -sd '|')
		[ "$have" = "$want" ] || problems+="${page##*/}: sections $have"$'\n'
	done
	[ -n "${page:-}" ] && [ -f "$page" ] || fail "no pages in $TOP/man"
	[ -z "$problems" ] || fail "${problems}wanted sections $want"
}

@test "the file-format page has NAME, DESCRIPTION, FILES, EXAMPLES and SEE ALSO, in order, and passes mandoc -T lint" {
	local page have
	for page in "$TOP"/man/*.5; do
		run mandoc -T lint -W warning "$page"
		assert_success
		assert_output ""
		have=$(sed -n 's/^\.Sh  *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$page" |
			grep -Fx -e NAME -e DESCRIPTION -e FILES -e EXAMPLES -e 'SEE ALSO' | paste -sd '|')
		assert_equal "$have" 'NAME|DESCRIPTION|FILES|EXAMPLES|SEE ALSO'
	done
	assert_file_exists "$TOP/man/pgcdc-event.5"
}

# ------------------------------------------------------------- pgcdc-event(5)

@test "pgcdc-event(5) examples: events counted by op; dead letters applied again once their cause is fixed" {
	examples pgcdc-event.5
	assert_equal "${#EX[@]}" 2
	new_shop
	run_example "${EX[0]}"
	assert_success
	assert_equal "$stderr" ""
	# one "COUNT OP" line per op, adding up to every event
	assert_output --regexp '^( *[0-9]+ [cud]
?)+$'
	assert_equal "$(awk '{ n += $1 } END { print n }' <<<"$output")" "$(wc -l <changes.ndjson)"
	assert_equal "$(awk '{ n += $1 } END { print n }' <<<"$output")" "$(log_ids | wc -l)"

	# a constraint the warehouse had for a while refused some rows
	createdb -T wh_template warehouse
	sql -d warehouse -c "ALTER TABLE analytics.fct_orders ADD CONSTRAINT small CHECK (amount_cents < 100000)"
	pg-upsert -q -d dbname=warehouse --map 'public.orders=analytics.fct_orders(id=order_id)' \
		--dlq=dlq.ndjson <changes.ndjson
	assert [ "$(wc -l <dlq.ndjson)" -gt 0 ]
	sql -d warehouse -c "ALTER TABLE analytics.fct_orders DROP CONSTRAINT small"
	run_example "${EX[1]}"
	assert_success
	# every record replayed landed: none dead-lettered again
	assert_equal "$(cat dlq-again.ndjson)" ""
	sql -d shop -c "SELECT id, status, amount_cents FROM orders ORDER BY id" >source
	sql -d warehouse -c "SELECT order_id, status, amount_cents FROM analytics.fct_orders
		ORDER BY order_id" >warehouse
	run diff source warehouse
	assert_success
	dropdb warehouse
}

# ------------------------------------------------------------- kafka-pub(1)

@test "kafka-pub(1) examples: keyed, dead-lettered and lz4-compressed messages reach the broker" {
	examples kafka-pub
	assert_equal "${#EX[@]}" 3
	use_kafka a

	# the event comes back keyed by its key member, from the one partition
	run_example "${EX[0]}"
	assert_success
	assert_output '{"id":7} 0 {"op":"c","key":{"id":7},"after":{"id":7,"total":"9.90"}}'
	assert_equal "$stderr" ""

	# "this prints 3 and the dead-letter record shown above"
	run_example "${EX[1]}"
	assert_success
	assert_output "3
$(shown_dead_letter kafka-pub)"
	assert_equal "$stderr" ""
	assert_equal "$(kcat -b "$KAFKA_BROKERS" -C -t demo -o 1 -e -q -f '%k %s\n')" '1 {"key":1}
2 {"key":2}'

	run_example "${EX[2]}"
	assert_success
	assert_equal "$output$stderr" ""
	assert_equal "$(kcat -b "$KAFKA_BROKERS" -C -t numbers -e -q)" "$(seq 1000)"
	# the broker stored lz4 batches (codec 3), not single messages
	run batch_codecs "$KAFKA_DIR/node1/data/numbers-0"
	assert_success
	[ "${#lines[@]}" -ge 1 ]
	[ "${#lines[@]}" -lt 1000 ]
	assert_equal "$(sort -u <<<"$output")" 3
}

# ------------------------------------------------------------- kafka-sub(1)

@test "kafka-sub(1) examples: groups resume from their offsets, the last hour again, the ack loop commits what it archived, bad values are dead-lettered" {
	examples kafka-sub
	assert_equal "${#EX[@]}" 6
	use_kafka b

	run_example "${EX[0]}"
	assert_success
	assert_output '{"key":1}
{"key":2}'
	assert_equal "$stderr" ""

	# the group "demo" committed both: only the new one comes
	run_example "${EX[1]}"
	assert_success
	assert_output '{"key":3}'
	assert_equal "$stderr" ""

	run_example "${EX[2]}"
	assert_success
	assert_output '{"key":1}'
	assert_equal "$stderr" ""

	# the last hour: all three
	run_example "${EX[3]}"
	assert_success
	assert_output "$(printf '{"key":%s}\n' 1 2 3)"
	assert_equal "$stderr" ""

	run_example "${EX[4]}"
	assert_success
	assert_equal "$output$stderr" ""
	assert_equal "$(cat archive.ndjson)" "$(printf '{"key":%s}\n' 1 2 3 4)"
	assert_equal "$(cat archive.ack)" 4
	# the loop acknowledged all four, so the group "archive" committed them
	run --separate-stderr timeout 30 kafka-sub -t demo -g archive -e
	assert_success
	assert_equal "$output$stderr" ""

	run_example "${EX[5]}"
	assert_success
	assert_output '{"error":"not JSON: unexpected character","topic":"raw","partition":0,"offset":0,"line":"not json"}'
	assert_equal "$stderr" ""
}

# ------------------------------------------------------------- pg-cdc-tail(1)

@test "pg-cdc-tail(1) examples: drain, follow into Kafka as far as it acknowledges, snapshot a second consumer, logical mode" {
	examples pg-cdc-tail
	assert_equal "${#EX[@]}" 4
	new_shop

	run_example "${EX[0]}"
	assert_success
	assert_equal "$output$stderr" ""
	assert_equal "$(jq -r .pos changes.ndjson | sort -n)" "$(log_ids)"

	# The follow example needs only a broker address.  It continues where
	# the drain above stored the consumer's position: only new changes come.
	local last new
	start_mock
	last=$(log_ids | tail -n 1)
	start_example "${EX[1]}"
	wait_for 10 '[ -n "$(running pg-cdc-tail)" ] && [ -n "$(running kafka-pub)" ]'
	order-sim -d dbname=shop -q --clients 2 --count 100 --rate 0 --update-ratio 0.3 --delete-ratio 0.1
	new=$(log_ids "$last" | wc -l)
	wait_for 20 '[ "$(cat tail.ack 2>/dev/null)" = "$new" ]' || fail "tail.ack: $(cat tail.ack), not $new"
	stop_example pg-cdc-tail
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$OUT" "$ERR")" ""
	assert_equal "$(topic_pos orders_cdc)" "$(log_ids "$last")"
	# each message is keyed by its event's key
	run kcat -b "$KAFKA_BROKERS" -C -t orders_cdc -e -q -f '%k\t%s\n'
	assert_success
	assert_equal "${#lines[@]}" "$new"
	assert_equal "$(cut -f 1 <<<"$output")" "$(cut -f 2 <<<"$output" | jq -c .key)"
	# the position was stored: the consumer has nothing left to emit
	run --separate-stderr pg-cdc-tail -d dbname=shop -t orders
	assert_success
	assert_equal "$output$stderr" ""

	# the new consumer reads every row once, and no change (all are older)
	run_example "${EX[2]}"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -r '[.op, .pos] | join(" ")' <<<"$output" | sort -u)" "r 0"
	assert_equal "$(jq -r .key.id <<<"$output" | sort)" "$(order_ids)"

	# logical mode: a slot and publication made, the table copied, the slot dropped
	run_example "${EX[3]}"
	assert_success
	assert_equal "$(jq -r '[.op, .pos] | join(" ")' audit.ndjson | sort -u)" "r 0"
	assert_equal "$(jq -r .key.id audit.ndjson | sort)" "$(order_ids)"
	assert_equal "$(sql -d shop -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'audit'")" 0
	assert_equal "$(sql -d shop -c "SELECT string_agg(tablename, ',') FROM pg_publication_tables WHERE pubname = 'orders_pub'")" orders
	kill "$MOCK"
	wait "$MOCK"
	waited "$MOCK"
}

# ------------------------------------------------------------- cdc-source(1)

@test "cdc-source(1) examples: -n prints the pipelines the page shows, one table and a whole database" {
	examples cdc-source
	assert_equal "${#EX[@]}" 5
	check_dry_run "${EX[0]}"
	check_dry_run "${EX[3]}"
}

@test "cdc-source(1) examples: run from the env file, then with a snapshot, every change and row reaches Kafka" {
	examples cdc-source
	assert_equal "${#EX[@]}" 5
	use_kafka a
	new_shop
	# The env file names remote hosts and /var/tmp: the environment, which
	# the page says takes precedence over the file, points the example here.
	local here=(CDC_SOURCE=dbname=shop KAFKA_BROKERS="$KAFKA_BROKERS" CDC_STATE_DIR="$PWD/state")
	local changes rows
	changes=$(log_ids | wc -l)

	# cdc-source sends the table's schema event before its first change
	start_example "${EX[1]}" "${here[@]}"
	wait_for 20 '[ "$(cat state/source.ack 2>/dev/null)" = "$((changes + 1))" ]' ||
		fail "source.ack: $(cat state/source.ack), not $((changes + 1))"
	stop_example cdc-source
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$OUT" "$ERR")" ""
	assert_equal "$(topic_pos orders_cdc)" "$(log_ids)"
	assert_equal "$(cat state/source-dead-letters.ndjson)" ""
	# the position is stored under the consumer name cdc-source
	run --separate-stderr pg-cdc-tail -d dbname=shop -t orders -n cdc-source
	assert_success
	assert_equal "$output$stderr" ""

	# the snapshot: every row once more, and no change (none is new); the
	# topic was made with one partition, so its messages follow the others
	rows=$(order_ids | wc -l)
	start_example "${EX[2]}" "${here[@]}"
	wait_for 20 '[ "$(cat state/source.ack 2>/dev/null)" = "$((rows + 1))" ]' ||
		fail "source.ack: $(cat state/source.ack), not $((rows + 1))"
	stop_example cdc-source
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$OUT" "$ERR")" ""
	run kcat -b "$KAFKA_BROKERS" -C -t orders_cdc -o "$((changes + 1))" -e -q
	assert_success
	assert_equal "$(jq -r .op <<<"$output" | uniq -c | awk '{ print $1, $2 }')" "1 s
$rows r"
	assert_equal "$(jq -r 'select(.op == "r") | .key.id' <<<"$output" | sort)" "$(order_ids)"

	# Not run: installing the service needs systemd as PID 1 and root's
	# /etc; only what it copies and enables is checked.
	check_service_example "${EX[4]}"
}

# ------------------------------------------------------------- cdc-sink(1)

@test "cdc-sink(1) examples: -n prints the pipelines the page shows, one table and a whole database" {
	examples cdc-sink
	assert_equal "${#EX[@]}" 5
	check_dry_run "${EX[0]}"
	check_dry_run "${EX[1]}"
}

@test "cdc-sink(1) examples: two instances from the env file apply the topic to the warehouse; jq reads their dead letters" {
	examples cdc-sink
	assert_equal "${#EX[@]}" 5
	use_kafka b
	new_shop
	dropdb --if-exists --force dw 2>/dev/null
	createdb -T wh_template dw
	# the changes of shop on two partitions, one for each instance, and a
	# value for each stage to refuse
	kafka_topic orders_cdc 2
	pg-cdc-tail -d dbname=shop -t orders -n sink-test | kafka-pub -t orders_cdc -k key
	printf 'not json\n' | kcat -b "$KAFKA_BROKERS" -P -t orders_cdc
	printf '{"op":"c"}\n' | kafka-pub -t orders_cdc
	STATE=$PWD/state
	# The environment points the example here, as for cdc-source above; the
	# script then waits for both instances and prints their exit statuses.
	local statuses='
jobs -p >instances
for p in $(cat instances); do s=0; wait "$p" || s=$?; echo "$s"; done'
	start_example "${EX[2]}$statuses" \
		CDC_WAREHOUSE=dbname=dw KAFKA_BROKERS="$KAFKA_BROKERS" CDC_STATE_DIR="$STATE"
	wait_for 10 '[ "$(running cdc-sink | wc -l)" -eq 2 ]' || fail "cdc-sink: $(running cdc-sink)"
	wait_for 30 'sink_converged && [ "$(dead_letters)" -eq 2 ]' || true
	sink_converged || fail "the warehouse is not the source"
	assert_equal "$(dead_letters)" 2
	assert_file_exists "$STATE/sink-1.ack"
	assert_file_exists "$STATE/sink-2.ack"
	# CDC_DLQ_TABLE came from the env file
	assert_regex "$(sql -d dw -c "SELECT convert_from(raw_value, 'UTF8'), error_message
		FROM analytics.failed_events")" \
		'^\{"op":"c","kafka":\{"topic":"orders_cdc","partition":[01],"offset":[0-9]+\}\}\|not an event: "pos" is not an unsigned 64-bit integer$'

	# the dead letters are in the state directory the environment set
	run_example "${EX[3]//\/var\/tmp\/pgcdc/$STATE}"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sort <<<"$output")" 'not JSON: unexpected character
not an event: "pos" is not an unsigned 64-bit integer'

	stop_example cdc-sink
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$OUT")" "0
0"
	assert_equal "$(cat "$ERR")" ""

	# Not run: installing the services needs systemd as PID 1 and root's
	# /etc; only what it copies and enables is checked.
	check_service_example "${EX[4]}"
}

# ------------------------------------------------------------- cdc-status(1)

@test "cdc-status(1) examples: the table shown, the positions for a script, the cron check silent when all is OK" {
	examples cdc-status
	assert_equal "${#EX[@]}" 3
	# the first runs its commands in turn, the last printing what is shown
	local script=${EX[0]} cmds=() want=() line
	while IFS= read -r line; do
		if [[ $line == '$ '* ]]; then cmds+=("${line:2}"); else want+=("$line"); fi
	done <<<"${script%$'\n'}"
	run_example "${cmds[0]}"
	assert_success
	run_example "${cmds[1]}"
	assert_success
	assert_output "$(printf '%s\n' "${want[@]}")"
	assert_equal "$stderr" ""

	# the env files of /etc/pgcdc here: the sink of the first example
	: >source.env
	printf '%s\n' CDC_WAREHOUSE=dbname=dw "CDC_STATE_DIR=$PWD/state" >sink.env
	run_example "${EX[1]//\/etc\/pgcdc/$PWD}"
	assert_success
	assert_output "$(printf 'kafka-sub\t\npg-upsert\t12')"
	assert_equal "$stderr" ""
	# the crontab line's command, its file here too
	local cron=${EX[2]#\*/5 \* \* \* \* }
	run_example "${cron//\/etc\/pgcdc\/sink.env/sink.env}" -u KAFKA_BROKERS
	run_example "${cron//\/etc\/pgcdc\/sink.env/sink.env}"
	assert_success
	assert_equal "$output$stderr" ""
}

# ------------------------------------------------------------- pgcdc-pair(1)

@test "pgcdc-pair(1) examples: the output shown, then the source half stopped by SIGTERM with all acknowledged" {
	examples pgcdc-pair
	assert_equal "${#EX[@]}" 3
	local i cmd want
	for i in 0 1; do
		cmd=${EX[i]%%$'\n'*} want=${EX[i]#*$'\n'}
		# without sh -e: the second shows a failing exit status
		run --separate-stderr timeout 30 sh -c "{ ${cmd:2}; } 2>&1" 3>&-
		assert_success
		assert_output "${want%$'\n'}"
	done

	use_kafka a
	new_shop
	# other examples use the topic too: count what this one adds
	local changes before
	changes=$(log_ids | wc -l)
	before=$(topic_pos orders_cdc | wc -l)
	start_example "${EX[2]}"
	wait_for 20 '[ "$(cat state/source.ack 2>/dev/null)" = "$changes" ]' ||
		fail "source.ack: $(cat state/source.ack), not $changes"
	stop_example pgcdc-pair
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$OUT" "$ERR")" ""
	assert_equal "$(($(topic_pos orders_cdc | wc -l) - before))" "$changes"
	# and pg-cdc-tail stored the position Kafka acknowledged: nothing is left
	run --separate-stderr pg-cdc-tail -d dbname=shop -t orders
	assert_success
	assert_equal "$output$stderr" ""
}
