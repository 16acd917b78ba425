#!/usr/bin/env bats
# make demo's script: the whole pipeline on a real Apache Kafka node it starts
# and removes, and on kafka-mock with KAFKA=mock; each ends with the
# warehouse equal to the source.

bats_require_minimum_version 1.5.0

setup() {
	load lib/common
}

@test "the demo runs on a real Kafka node of its own, passes its check, and leaves nothing running" {
	local dir
	run --separate-stderr env -u KAFKA_BROKERS "$TOP/scripts/demo" --duration 3
	assert_success
	assert_line --regexp '^demo: started Kafka at 127\.0\.0\.1:[0-9]+ \(its data in .*/pgcdc-kafka\.[^ ]*, removed at the end\)$'
	assert_line --regexp '^demo: pipeline ready: the first change took [0-9.]+ s end to end$'
	assert_line 'demo: OK: the warehouse equals the source, and answers the demo queries as it does'
	# each stage's last report: all of it moved, nothing behind, no dead letters
	assert_line --regexp '^  pg-cdc-tail  [0-9]+ lines out; behind: 0 changes, 0 s$'
	assert_line --regexp '^  kafka-pub    [0-9]+ delivered; 0 in flight; 0 dead letters$'
	assert_line --regexp '^  kafka-sub    [0-9]+ lines out; consumer lag 0 messages; 0 dead letters$'
	assert_line --regexp '^  pg-upsert    [0-9]+ applied; 0 pending; last batch [0-9]+ ms behind its commit; 0 dead letters$'
	# and the same count through every stage: the changes the source wrote
	assert_equal "$(grep -E '^  (pg-cdc-tail|kafka-pub|kafka-sub|pg-upsert) ' <<<"$output" | awk '{ print $2 }' | sort -u)" \
		"$(sed -n 's/^demo: \([0-9]*\) changes written in .*/\1/p' <<<"$output")"
	# the broker and its data are gone
	dir=$(sed -n 's/^demo: started Kafka at .* (its data in \(.*\), removed at the end)$/\1/p' <<<"$output")
	[ -n "$dir" ]
	[ ! -e "$dir" ]
	run pgrep -f -- "$dir"
	assert_failure 1
}

@test "KAFKA=mock runs it on kafka-mock, labelled; another value is refused" {
	run --separate-stderr env -u KAFKA_BROKERS KAFKA=mock "$TOP/scripts/demo" --duration 2
	assert_success
	assert_line --regexp '^demo: started kafka-mock \(3 brokers, in memory, keeping only the newest 5 MiB of each partition: for a demo, not for data\) at '
	assert_line 'demo: OK: the warehouse equals the source, and answers the demo queries as it does'
	run --separate-stderr env -u KAFKA_BROKERS KAFKA=bogus "$TOP/scripts/demo" --duration 2
	assert_failure 2
	assert_line 'demo: KAFKA=bogus: kafka (the default) or mock'
}
