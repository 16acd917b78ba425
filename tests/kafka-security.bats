#!/usr/bin/env bats
# Kafka with TLS and SASL/SCRAM: a real broker whose client listener is
# SASL_SSL, with a certificate from a throwaway CA (tests/lib/kafka.bash,
# KAFKA_SECURE=1), and the tools passing through it with librdkafka
# properties from a file (-F), the password only in that file.  The broker is
# Kafka 3.9 (tests/kafka/pom-3.xml): Debian 12's librdkafka (2.0.2) cannot log
# in to Kafka 4 with SCRAM (librdkafka 4895, fixed in 2.6.1), so the last test
# runs Kafka 4 with SASL/PLAIN over TLS, which it can.

# every process of this file: the broker of Kafka 3.9
export KAFKA_POM="$BATS_TEST_DIRNAME/kafka/pom-3.xml"

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	KAFKA_SECURE=1 suite_start source warehouse kafka
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	WORK=$(mktemp -d)
	TOPIC="sec_${BATS_TEST_NUMBER}"
	STARTED=()
	# the client's properties: the password in a file only its owner reads
	client_conf "$WORK/kafka.conf" "$KAFKA_CA" "$(cat "$KAFKA_PASSWORD_FILE")"
}

teardown() {
	stop_started
	rm -rf "$WORK"
}

# client_conf FILE CA PASSWORD [MECHANISM]: librdkafka properties for the
# SASL_SSL listener (SCRAM-SHA-256 unless MECHANISM)
client_conf() {
	(
		umask 077
		cat >"$1" <<-EOF
			security.protocol=SASL_SSL
			ssl.ca.location=$2
			sasl.mechanisms=${4:-SCRAM-SHA-256}
			sasl.username=$KAFKA_USER
			sasl.password=$3
		EOF
	)
}

lines() {
	seq "$1" "$2" | awk '{ printf "{\"op\":\"c\",\"key\":{\"id\":%d},\"n\":%d}\n", $1 % 7, $1 }'
}

@test "kafka-pub and kafka-sub through TLS and SASL with -F: every line, byte for byte; kcat agrees" {
	lines 1 500 | kafka-pub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/kafka.conf" -t "$TOPIC" -k key
	run --separate-stderr timeout 60 kafka-sub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/kafka.conf" \
		-t "$TOPIC" -g "g_$TOPIC" -o beginning -e
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sort <<<"$output")" "$(lines 1 500 | sort)"
	# an independent client, through the same listener
	run --separate-stderr timeout 30 kcat -F "$WORK/kafka.conf" -b "$KAFKA_SECURE_BROKERS" -C -t "$TOPIC" -e -q
	assert_success
	assert_equal "$(grep -c . <<<"$output")" 500
	# the same with -X, the secret from the environment
	export PASSWORD
	PASSWORD=$(cat "$KAFKA_PASSWORD_FILE")
	lines 501 510 | kafka-pub -b "$KAFKA_SECURE_BROKERS" -X security.protocol=SASL_SSL \
		-X ssl.ca.location="$KAFKA_CA" -X sasl.mechanisms=SCRAM-SHA-256 -X sasl.username="$KAFKA_USER" \
		-X sasl.password="$PASSWORD" -t "$TOPIC" -k key
	run --separate-stderr timeout 60 kafka-sub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/kafka.conf" \
		-t "$TOPIC" -g "g_$TOPIC" -e
	assert_success
	assert_equal "$(sort <<<"$output")" "$(lines 501 510 | sort)"
}

@test "a wrong password: one clear error and exit 1 from kafka-pub and kafka-sub, at once" {
	client_conf "$WORK/wrong.conf" "$KAFKA_CA" not-the-password
	run --separate-stderr timeout 30 kafka-pub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/wrong.conf" -t "$TOPIC" \
		< <(lines 1 5)
	assert_failure 1
	assert_regex "${stderr_lines[0]}" '^kafka-pub: sasl_ssl://127\.0\.0\.1:[0-9]+/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256 '
	assert_equal "${stderr_lines[1]}" 'kafka-pub: 5 of 5 lines not delivered (Local: Purged in queue)'
	assert_equal "${#stderr_lines[@]}" 2
	run --separate-stderr timeout 30 kafka-sub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/wrong.conf" \
		-t "$TOPIC" -g "g_$TOPIC" -o beginning -e
	assert_failure 1
	assert_output ''
	assert_regex "$stderr" '^kafka-sub: sasl_ssl://127\.0\.0\.1:[0-9]+/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256 [^
]*$'
}

@test "an untrusted broker certificate: one clear error and exit 1, nothing sent" {
	client_conf "$WORK/untrusted.conf" "$KAFKA_DIR/tls/other-ca.pem" "$(cat "$KAFKA_PASSWORD_FILE")"
	run --separate-stderr timeout 30 kafka-pub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/untrusted.conf" -t "$TOPIC" \
		< <(lines 1 5)
	assert_failure 1
	assert_regex "${stderr_lines[0]}" '^kafka-pub: sasl_ssl://127\.0\.0\.1:[0-9]+/bootstrap: SSL handshake failed: .*certificate verify failed: broker certificate could not be verified'
	assert_equal "${stderr_lines[1]}" 'kafka-pub: 5 of 5 lines not delivered (Local: Purged in queue)'
	assert_equal "${#stderr_lines[@]}" 2
	run --separate-stderr timeout 30 kafka-sub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/untrusted.conf" \
		-t "$TOPIC" -g "g_$TOPIC" -o beginning -e
	assert_failure 1
	assert_regex "$stderr" '^kafka-sub: sasl_ssl://127\.0\.0\.1:[0-9]+/bootstrap: SSL handshake failed: .*certificate verify failed[^
]*$'
	# the topic was never made
	run timeout 30 kcat -F "$WORK/kafka.conf" -b "$KAFKA_SECURE_BROKERS" -L -t "$TOPIC"
	refute_output --partial "partition 0,"
}

@test "cdc-source and cdc-sink through TLS and SASL (CDC_PUB_OPTS, CDC_SUB_OPTS): the warehouse equals the source" {
	local db="src_${BATS_TEST_NUMBER}" wh="wh_${BATS_TEST_NUMBER}"
	createdb -T src_template "$db"
	createdb -T wh_template "$wh"
	cat >"$WORK/source.env" <<-EOF
		CDC_SOURCE="host=$PGHOST port=$PGPORT user=postgres dbname=$db"
		CDC_TABLE=orders
		CDC_TOPIC=$TOPIC
		KAFKA_BROKERS=$KAFKA_SECURE_BROKERS
		CDC_STATE_DIR=$WORK/state
		CDC_PUB_OPTS="-F $WORK/kafka.conf"
	EOF
	cat >"$WORK/sink.env" <<-EOF
		CDC_WAREHOUSE="host=$PGHOST port=$PGPORT user=postgres dbname=$wh"
		CDC_TARGET=analytics.fct_orders
		CDC_TOPIC=$TOPIC
		CDC_GROUP=sink_$TOPIC
		KAFKA_BROKERS=$KAFKA_SECURE_BROKERS
		CDC_STATE_DIR=$WORK/state
		CDC_SUB_OPTS="-F $WORK/kafka.conf"
	EOF
	# the sink's kafka-sub takes a topic that does not exist for an error
	kafka_topic "$TOPIC" 2
	env -i PATH="$PATH" cdc-source -e "$WORK/source.env" </dev/null >/dev/null 2>"$WORK/source.err" 3>&- &
	STARTED+=($!)
	env -i PATH="$PATH" cdc-sink -e "$WORK/sink.env" </dev/null >/dev/null 2>"$WORK/sink.err" 3>&- &
	STARTED+=($!)
	order-sim -d "$db" --clients 2 --count 1000 --rate 0 --update-ratio 0.3 --delete-ratio 0.05 --seed 9 2>/dev/null
	local n
	n=$(sql -d "$db" -c "SELECT count(*) FROM orders_cdc_log")
	wait_for 60 '[ "$(cat "$WORK/state/sink-default.ack" 2>/dev/null || echo 0)" -ge "$n" ]'
	assert_equal "$(sql -d "$wh" -c "SELECT count(*) FROM analytics.fct_orders WHERE NOT is_deleted")" \
		"$(sql -d "$db" -c "SELECT count(*) FROM orders")"
	assert_equal "$(sql -d "$wh" -c "SELECT md5(string_agg(id::text || status || amount_cents, ',' ORDER BY id)) FROM analytics.fct_orders WHERE NOT is_deleted")" \
		"$(sql -d "$db" -c "SELECT md5(string_agg(id::text || status || amount_cents, ',' ORDER BY id)) FROM orders")"
	assert_equal "$(cat "$WORK/source.err" "$WORK/sink.err")" ""
}

@test "Kafka 4 with Debian's librdkafka: SASL/PLAIN over TLS carries kafka-pub and kafka-sub; a wrong password is refused" {
	(
		# a cluster of Kafka 4 of this test's own
		KAFKA_POM=$TOP/tests/kafka/pom.xml
		unset KAFKA_VERSION KAFKA_LIBS
		TMPDIR=$WORK
		. "$TOP/tests/lib/kafka.bash"
		trap kafka_destroy EXIT
		KAFKA_SECURE=1 kafka_start >/dev/null
		client_conf "$WORK/plain.conf" "$KAFKA_CA" "$(cat "$KAFKA_PASSWORD_FILE")" PLAIN
		lines 1 100 | kafka-pub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/plain.conf" -t "$TOPIC" -k key
		timeout 60 kafka-sub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/plain.conf" -t "$TOPIC" -g "g_$TOPIC" \
			-o beginning -e >"$WORK/out"
		client_conf "$WORK/wrong.conf" "$KAFKA_CA" not-the-password PLAIN
		! timeout 30 kafka-sub -b "$KAFKA_SECURE_BROKERS" -F "$WORK/wrong.conf" -t "$TOPIC" -g "g_$TOPIC" \
			-e 2>"$WORK/err"
	) 3>&-
	assert_equal "$(sort "$WORK/out")" "$(lines 1 100 | sort)"
	grep -q 'SASL authentication error: Authentication failed: Invalid username or password' "$WORK/err"
}
