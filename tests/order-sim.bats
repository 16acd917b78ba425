#!/usr/bin/env bats
# order-sim against a real PostgreSQL: what it writes, how it paces, stops and recovers.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	new_source_db
}

SUMMARY_RE='^order-sim: ([0-9]+) changes? \(([0-9]+) inserts?, ([0-9]+) updates?, ([0-9]+) deletes?\) in ([0-9]+) transactions? by ([0-9]+) clients? in [0-9]+\.[0-9] s, [0-9]+\.[0-9] changes/s$'

log_rows() {
	sql -d "${1:-$DB}" -c "select count(*) from orders_cdc_log"
}

log_ops() {
	sql -d "${1:-$DB}" -c "select concat_ws(' ',
		count(*) filter (where op = 'c'),
		count(*) filter (where op = 'u'),
		count(*) filter (where op = 'd')) from orders_cdc_log"
}

# A digest of every column the simulator chooses (not the timestamps).
orders_md5() {
	sql -d "$1" -c "select count(*) || ' ' || md5(coalesce(string_agg(concat_ws('|',
		id, user_id, status, amount_cents, currency, country, version), ','
		order by id), '')) from orders"
}

# The summary line in $1 agrees with the change log: "changes inserts updates deletes".
summary_matches_log() {
	[[ $1 =~ $SUMMARY_RE ]] || { echo "no summary in: $1" >&2; return 1; }
	local want
	want="${BASH_REMATCH[2]} ${BASH_REMATCH[3]} ${BASH_REMATCH[4]}"
	[ "$(log_ops "${2:-$DB}")" = "$want" ] || { echo "log has $(log_ops), summary $want" >&2; return 1; }
	[ "$(log_rows "${2:-$DB}")" = "${BASH_REMATCH[1]}" ]
}

has_rows() {
	[ "$(log_rows)" -ge "$1" ]
}

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr order-sim --help
	assert_success
	assert_line --index 0 'Usage: order-sim [OPTION]...'
	assert_output --partial '--update-ratio=R'
	[ -z "$stderr" ]
}

@test "--help and --version exit 1 when standard output cannot be written" {
	run --separate-stderr sh -c 'order-sim --help >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "order-sim: cannot write the help: No space left on device"
	run --separate-stderr sh -c 'order-sim --version >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "order-sim: cannot write the version: No space left on device"
}

@test "--version prints the name and version" {
	run --separate-stderr order-sim -V
	assert_success
	assert_output --regexp '^order-sim [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "an unknown option is a usage error" {
	run --separate-stderr order-sim --bogus
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[ "$stderr" = 'order-sim: error: unrecognized option "--bogus"
Try "order-sim --help" for more information.' ]
}

@test "an option without its value is a usage error" {
	run --separate-stderr order-sim --rate
	[ "$status" -eq 2 ]
	[ "${stderr_lines[1]}" = 'Try "order-sim --help" for more information.' ]
}

@test "a bad number is a usage error" {
	run --separate-stderr order-sim --clients=0
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = 'order-sim: error: --clients must be in range 1..1000' ]
	run --separate-stderr order-sim --rate=fast
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = 'order-sim: error: invalid value "fast" for option --rate' ]
}

@test "ratios adding up to more than 1 are a usage error" {
	run --separate-stderr order-sim -d "$DB" --update-ratio=0.8 --delete-ratio=0.3
	[ "$status" -eq 2 ]
	[ "$stderr" = 'order-sim: error: --update-ratio and --delete-ratio add up to more than 1
Try "order-sim --help" for more information.' ]
	[ "$(log_rows)" -eq 0 ]
}

@test "ratios adding up to exactly 1 are accepted" {
	run --separate-stderr order-sim -d "$DB" --update-ratio=0.7 --delete-ratio=0.3 --rate=0 --count=5
	assert_success
}

@test "a refused connection is one line and exit 1" {
	run --separate-stderr order-sim -d 'host=/nonexistent' --count=1
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == 'order-sim: connection failed: '* ]]
}

@test "a database without the orders table is exit 1" {
	createdb "empty_$BATS_TEST_NUMBER"
	run --separate-stderr order-sim -d "empty_$BATS_TEST_NUMBER" --count=1
	[ "$status" -eq 1 ]
	[ "$stderr" = 'order-sim: table "public.orders" does not exist' ]
}

@test "--count writes exactly that many changes" {
	run --separate-stderr timeout 60 order-sim -d "$DB" --count=137 --rate=0 --clients=4
	assert_success
	[ -z "$output" ]
	[ "$(log_rows)" -eq 137 ]
	summary_matches_log "$stderr"
}

@test "the summary line tells what was committed" {
	run --separate-stderr timeout 60 order-sim -d "$DB" --count=10 --rate=0 --update-ratio=0
	assert_success
	[ -z "$output" ]
	[[ $stderr =~ ^'order-sim: 10 changes (10 inserts, 0 updates, 0 deletes) in '[0-9]+' transactions by 1 client in '[0-9.]+' s, '[0-9.]+' changes/s'$ ]]
	summary_matches_log "$stderr"
}

@test "-q leaves out the summary" {
	run --separate-stderr timeout 60 order-sim -q -d "$DB" --count=10 --rate=0
	assert_success
	[ -z "$stderr" ]
	[ "$(log_rows)" -eq 10 ]
}

@test "transactions hold one to three changes" {
	run --separate-stderr timeout 60 order-sim -d "$DB" --count=300 --rate=0 --seed=5
	assert_success
	# sizes per transaction: all within 1..3, and more than one size used
	run sql -d "$DB" -c "select min(n) || ' ' || max(n) || ' ' || count(distinct n)
		from (select count(*) n from orders_cdc_log group by txid) t"
	assert_output '1 3 3'
}

@test "--update-ratio updates orders along their lifecycle" {
	run --separate-stderr timeout 60 order-sim -d "$DB" --count=400 --rate=0 --update-ratio=0.5 --clients=2
	assert_success
	summary_matches_log "$stderr"
	[ "$(sql -d "$DB" -c "select count(*) from orders_cdc_log where op = 'u'")" -gt 50 ]
	[ "$(sql -d "$DB" -c "select count(*) from orders where version > 1")" -gt 0 ]
	# version counts the updates of each order, the trigger's job
	run sql -d "$DB" -c "select count(*) from orders o where version <>
		1 + (select count(*) from orders_cdc_log l where l.op = 'u' and l.key->>'id' = o.id::text)"
	assert_output 0
	# no status goes backwards: created < paid < shipped < delivered
	run sql -d "$DB" -c "select count(*) from orders_cdc_log
		where op = 'u' and array_position(array['created','paid','shipped','delivered','cancelled'], after->>'status')
		             <= array_position(array['created','paid','shipped','delivered','cancelled'], before->>'status')"
	assert_output 0
}

@test "--update-ratio=0 writes inserts only" {
	run --separate-stderr timeout 60 order-sim -d "$DB" --count=50 --rate=0 --update-ratio=0
	assert_success
	[ "$(log_ops)" = "50 0 0" ]
}

@test "--delete-ratio deletes orders" {
	run --separate-stderr timeout 60 order-sim -d "$DB" --count=300 --rate=0 --delete-ratio=0.3 --update-ratio=0.2 --clients=3
	assert_success
	summary_matches_log "$stderr"
	read -r c u d <<<"$(log_ops)"
	[ "$d" -gt 20 ]
	[ "$(sql -d "$DB" -c "select count(*) from orders")" -eq $((c - d)) ]
	run sql -d "$DB" -c "select count(*) from orders o join orders_cdc_log l
		on l.op = 'd' and l.key->>'id' = o.id::text"
	assert_output 0
}

@test "--seed makes a run repeatable" {
	local other="src_${BATS_TEST_NUMBER}_b" third="src_${BATS_TEST_NUMBER}_c"
	createdb -T src_template "$other"
	createdb -T src_template "$third"
	local args=(--clients=1 --rate=0 --count=500 --update-ratio=0.5 --delete-ratio=0.1)
	order-sim -q -d "$DB" --seed=42 "${args[@]}"
	order-sim -q -d "$other" --seed=42 "${args[@]}"
	order-sim -q -d "$third" --seed=43 "${args[@]}"
	[ "$(orders_md5 "$DB")" = "$(orders_md5 "$other")" ]
	[ "$(orders_md5 "$DB")" != "$(orders_md5 "$third")" ]
	# the uuids are the simulator's own, version 4
	run sql -d "$DB" -c "select count(*) from orders where id::text !~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'"
	assert_output 0
}

@test "--clients=8 interleaves transactions: log ids out of transaction order" {
	run --separate-stderr timeout 60 order-sim -d "$DB" --clients=8 --rate=1000 --count=1000
	assert_success
	summary_matches_log "$stderr"
	# a log row with a smaller txid than some row before it: the two
	# transactions overlapped, so ids and commits are not in the same order
	run sql -d "$DB" -c "select count(*) from (select txid < max(txid) over
		(order by id rows between unbounded preceding and 1 preceding) as behind
		from orders_cdc_log) t where behind"
	assert_success
	[ "$output" -gt 0 ]
}

@test "--duration stops the run" {
	local start=$SECONDS
	run --separate-stderr timeout 30 order-sim -d "$DB" --duration=1 --rate=20 --clients=2
	assert_success
	[ $((SECONDS - start)) -le 4 ]
	summary_matches_log "$stderr"
	# 20 a second for one second: the schedule allows no more than 20
	[ "$(log_rows)" -ge 5 ]
	[ "$(log_rows)" -le 20 ]
}

@test "--rate spreads changes evenly, not in bursts" {
	run --separate-stderr timeout 30 order-sim -d "$DB" --rate=20 --count=20 --clients=4
	assert_success
	# 20 changes at 20/s span about 0.95 s ...
	run sql -d "$DB" -c "select extract(epoch from max(ts) - min(ts)) >= 0.8 from orders_cdc_log"
	assert_output t
	# ... and no 100 ms holds much more than its 2
	run sql -d "$DB" -c "select max((select count(*) from orders_cdc_log b
		where b.ts >= a.ts and b.ts < a.ts + interval '100 ms')) <= 5 from orders_cdc_log a"
	assert_output t
}

@test "SIGTERM stops cleanly with the summary, exit 0" {
	order-sim -d "$DB" --rate=100 --clients=3 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local pid=$! rc=0
	wait_for 20 "has_rows 20"
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	summary_matches_log "$(cat "$BATS_TEST_TMPDIR/err")"
}

@test "SIGINT stops cleanly with the summary, exit 0" {
	order-sim -d "$DB" --rate=100 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local pid=$! rc=0
	wait_for 20 "has_rows 10"
	kill -INT "$pid"
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	summary_matches_log "$(cat "$BATS_TEST_TMPDIR/err")"
}

@test "a server restart mid-run: reconnects, loses and doubles nothing" {
	timeout 120 order-sim -d "$DB" --clients=4 --rate=200 --count=600 \
		2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local pid=$! rc=0
	wait_for 20 "has_rows 100"
	pg_restart
	wait "$pid" || rc=$?
	cat "$BATS_TEST_TMPDIR/err"
	[ "$rc" -eq 0 ]
	grep -q 'connection lost' "$BATS_TEST_TMPDIR/err"
	[ "$(log_rows)" -eq 600 ]
	summary_matches_log "$(tail -n 1 "$BATS_TEST_TMPDIR/err")"
}

@test "the man page passes mandoc -T lint" {
	run mandoc -T lint -W warning "$TOP/man/order-sim.1"
	assert_success
	assert_output ''
}

@test "the man page examples run" {
	local dbs=(shop a b) d line n=0
	for d in "${dbs[@]}"; do
		dropdb --if-exists "$d" 2>/dev/null
		createdb -T src_template "$d"
	done
	while IFS= read -r line; do
		# the first example runs until interrupted
		run --separate-stderr eval "timeout --preserve-status -s INT 2 $line"
		assert_success
		n=$((n + 1))
	done < <(mandoc -T ascii "$TOP/man/order-sim.1" | col -bx |
		sed -n '/^EXAMPLES/,/^SEE ALSO/s/^ *\(order-sim .*\)$/\1/p')
	[ "$n" -eq 3 ]
	[ "$(log_rows shop)" -gt 0 ]
	[ "$(log_rows a)" -eq 1000 ]
	[ "$(orders_md5 a)" = "$(orders_md5 b)" ]
	for d in "${dbs[@]}"; do dropdb "$d"; done
}
