# Loaded by every test file: bats helper libraries, the built tools on PATH,
# and the throwaway PostgreSQL helpers.

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
export PATH="$TOP/bin:$PATH"
BATS_LIB=${BATS_LIB:-/usr/lib/bats}
load "$BATS_LIB/bats-support/load"
load "$BATS_LIB/bats-assert/load"
load "$BATS_LIB/bats-file/load"
. "$TOP/tests/lib/pg.bash"

# suite_start WHAT...: in setup_file, the services a suite's tests share: pg
# (a PostgreSQL), source (pg and the source template), warehouse (pg and the
# warehouse template), kafka (one broker; KAFKA_SECURE=1 as kafka_start
# takes it).  suite_stop, in teardown_file, stops whatever it started.
suite_start() {
	local what pg=0
	for what; do
		case $what in
		pg | source | warehouse) [ $pg = 1 ] || pg_start || return 1; pg=1 ;;
		esac
		case $what in
		source) make_source_template ;;
		warehouse) make_warehouse_template ;;
		kafka) . "$TOP/tests/lib/kafka.bash" && kafka_start || return 1 ;;
		esac
	done
}

suite_stop() {
	if [ -n "${KAFKA_DIR:-}" ]; then
		. "$TOP/tests/lib/kafka.bash"
		kafka_destroy
	fi
	[ -z "${PGTEST_DIR:-}" ] || pg_destroy
}

# stop_started: in teardown, kill -9 what the test started in the background
# (the pids in STARTED), the children of each first, so that no script
# outlives its stages' parent.
stop_started() {
	local p
	for p in "${STARTED[@]}"; do
		pkill -9 -P "$p"
		kill -9 "$p" && wait "$p"
	done 2>/dev/null
	return 0
}

# A template database with the capture machinery and the orders table, made
# once per test file (call from setup_file after pg_start).
make_source_template() {
	createdb -T template0 src_template
	sql -d src_template -f "$TOP/sql/cdc.sql" -f "$TOP/sql/orders.sql" >/dev/null 2>&1
}

# The warehouse template (the analytics schema), once per test file.
make_warehouse_template() {
	createdb -T template0 wh_template
	sql -d wh_template -f "$TOP/tests/lib/fct-orders-soft.sql" >/dev/null
}

# A fresh warehouse database for one test, $WH, named after the test number.
new_warehouse_db() {
	WH="wh_${BATS_TEST_NUMBER}"
	dropdb --if-exists "$WH" 2>/dev/null
	createdb -T wh_template "$WH"
}

# drop_slot NAME: drop a test's replication slot, if there is one, once
# nothing uses it (a slot holds WAL back and its database open).
drop_slot() {
	wait_for 10 "[ \"\$(sql -c \"SELECT count(*) FROM pg_replication_slots
		WHERE slot_name = '$1' AND active\")\" = 0 ]" || true
	sql -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = '$1'" >/dev/null 2>&1 || true
}

# A fresh source database for one test, named after the test number.
new_source_db() {
	DB="src_${BATS_TEST_NUMBER}"
	dropdb --if-exists "$DB" 2>/dev/null
	createdb -T src_template "$DB"
	export DB
}

# wait_for SECONDS 'SHELL CONDITION': re-evaluate the condition every 0.1 s
# until it holds; fail after SECONDS.
wait_for() {
	local limit=$1 i=0
	shift
	while ! eval "$1"; do
		i=$((i + 1))
		[ "$i" -ge $((limit * 10)) ] && return 1
		sleep 0.1
	done
}
