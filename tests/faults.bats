#!/usr/bin/env bats
# Faults: the whole pipeline (cdc-source and cdc-sink, each under a restart
# loop) against real PostgreSQL clusters and a real Kafka broker while
# order-sim writes with 8 clients; after each fault the pipeline drains and
# the warehouse equals the source row for row.  The scenarios are in
# tests/lib/faults.bash.
#
# One suite for both capture modes: tests/faults-logical.bats is a symbolic
# link to this file, and the name the suite is run by chooses the mode, so
# every scenario below runs in trigger mode (faults.bats) and in logical mode
# (faults-logical.bats: pg-cdc-tail --mode=logical, a replication slot per
# test).  Each test's name starts with its mode.

bats_require_minimum_version 1.5.0

case ${BATS_TEST_FILENAME##*/} in
faults-logical.bats) export FAULT_MODE=logical ;;
*) export FAULT_MODE=trigger ;;
esac
BATS_TEST_NAME_PREFIX="$FAULT_MODE: "

setup_file() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	. "$TOP/tests/lib/faults.bash"
	fault_setup_file
}

teardown_file() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	. "$TOP/tests/lib/faults.bash"
	fault_teardown_file
}

setup() {
	load lib/common
	. "$TOP/tests/lib/kafka.bash"
	. "$TOP/tests/lib/faults.bash"
	fault_setup
}

teardown() {
	fault_teardown
}

@test "pg-cdc-tail killed with -9 at random moments, 5 times: the warehouse equals the source" {
	fault_scenario_kill_stage pg-cdc-tail
}

@test "kafka-pub killed with -9 at random moments, 5 times: the warehouse equals the source" {
	fault_scenario_kill_stage kafka-pub
}

@test "kafka-sub killed with -9 at random moments, 5 times: the warehouse equals the source" {
	fault_scenario_kill_stage kafka-sub
}

@test "pg-upsert killed with -9 at random moments, 5 times: the warehouse equals the source" {
	fault_scenario_kill_stage pg-upsert
}

@test "the Kafka broker restarted mid-run: the warehouse equals the source" {
	fault_scenario_restart_broker
}

@test "the Kafka broker crashed (kill -9) mid-run: the warehouse equals the source" {
	fault_scenario_restart_broker kill
}

@test "the source PostgreSQL restarted mid-run: the warehouse equals the source" {
	fault_scenario_restart_pg src
}

@test "the warehouse PostgreSQL restarted mid-run: the warehouse equals the source" {
	fault_scenario_restart_pg wh
}

@test "the source PostgreSQL crashed (kill -9) mid-run: the warehouse equals the source" {
	fault_scenario_restart_pg src kill
}

@test "the warehouse PostgreSQL crashed (kill -9) mid-run: the warehouse equals the source" {
	fault_scenario_restart_pg wh kill
}

@test "poison messages produced into the topic are dead-lettered and the pipeline goes on" {
	fault_scenario_poison
}

@test "three partitions, three sink instances, one killed: the warehouse equals the source" {
	fault_scenario_sink_group
}
