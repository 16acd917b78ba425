#!/usr/bin/env bats
# The source half: pg-cdc-tail | kafka-pub joined by one ack file, against a
# real PostgreSQL and a real Kafka broker.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source kafka
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	new_source_db
	TOPIC="src_${BATS_TEST_NUMBER}"
	WORK=$(mktemp -d)
}

teardown() {
	pkill -9 -f "pg-cdc-tail -d dbname=$DB host=$PGHOST " 2>/dev/null || true
	pkill -9 -f "kafka-pub -b $KAFKA_BROKERS -t $TOPIC " 2>/dev/null || true
	rm -rf "$WORK"
}

# The command lines name this suite's own socket directory and broker, so
# that the patterns below never match another suite's stages running beside it.
source_half() {
	pg-cdc-tail -d "dbname=$DB host=$PGHOST" -t orders -f --ack="$WORK/ack" |
		kafka-pub -b "$KAFKA_BROKERS" -t "$TOPIC" -k key --ack="$WORK/ack"
}

published_positions() {
	kcat -b "$KAFKA_BROKERS" -C -t "$TOPIC" -o beginning -e -q | grep -o '"pos":[0-9]*' | cut -d: -f2 | sort -n -u
}

log_ids() {
	sql -d "$DB" -c "SELECT id FROM orders_cdc_log ORDER BY id"
}

@test "changes reach Kafka and the tail's position follows Kafka's acknowledgements" {
	( source_half ) 2>"$WORK/err" 3>&- &
	order-sim -d "$DB" --clients 4 --count 2000 --rate 0 --update-ratio 0.3 --seed 3 2>/dev/null
	wait_for 30 '[ "$(published_positions | wc -l)" = "$(log_ids | wc -l)" ]'
	assert_equal "$(published_positions)" "$(log_ids)"
	wait_for 10 '[ "$(sql -d "$DB" -c "SELECT count(*) FROM cdc.consumer WHERE snap_hi IS NULL")" = 1 ]'
	assert_equal "$(cat "$WORK/ack")" "$(log_ids | wc -l)"
	assert_equal "$(cat "$WORK/err")" ""
}

@test "kafka-pub killed with -9 mid-stream: after a restart nothing is missing" {
	order-sim -d "$DB" --clients 4 --count 20000 --rate 0 --seed 4 2>/dev/null
	( source_half ) 2>/dev/null 3>&- &
	wait_for 30 '[ "$(cat "$WORK/ack" 2>/dev/null || echo 0)" -gt 1000 ]'
	pkill -9 -f "kafka-pub -b $KAFKA_BROKERS -t $TOPIC "
	wait_for 10 '! pgrep -f "pg-cdc-tail -d dbname=$DB host=$PGHOST " >/dev/null'
	( source_half ) 2>/dev/null 3>&- &
	wait_for 60 '[ "$(published_positions | wc -l)" = 20000 ]'
	assert_equal "$(published_positions)" "$(log_ids)"
}
