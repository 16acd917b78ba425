#!/usr/bin/env bats
# C unit tests of src/common, built by `make unit`.

bats_require_minimum_version 1.5.0

setup() {
	load lib/common
}

@test "the JSON scanner accepts exactly RFC 8259 texts and finds keys" {
	run "$TOP/build/unit/jsonscan"
	assert_success
	assert_output --regexp 'jsonscan: [0-9]+ passed, 0 failed$'
}

@test "the ack window: marks, acknowledgements, foreign counts refused, wrap-around, exit wait, lock" {
	run --separate-stderr "$TOP/build/unit/ackwin"
	assert_success
	assert_output --regexp '^ackwin: [0-9]+ passed, 0 failed$'
	# each refusal says why, naming the file
	assert_equal "$(grep -c 'is refused (it says 6 lines, but only 5 were written)' <<<"$stderr")" 2
	assert_equal "$(grep -c 'is in use by another pipeline (pid [0-9]* holds /tmp/ackwin\.[^/]*/ack\.lock)$' <<<"$stderr")" 2
}

@test "the line reader: lines across reads, over-long lines cut, an unterminated last line" {
	run "$TOP/build/unit/linereader"
	assert_success
	assert_output --regexp '^linereader: [0-9]+ passed, 0 failed$'
}

@test "dead-letter records: base64 that base64 -d decodes byte for byte, the 16 MiB cut marked truncated" {
	run --separate-stderr "$TOP/build/unit/dlq"
	assert_success
	assert_output --regexp '^dlq: [0-9]+ passed, 0 failed$'
	assert_equal "$stderr" ""
}

@test "the JSON walk: members and elements as written, escaped quotes and nesting skipped whole" {
	run "$TOP/build/unit/jsonwalk"
	assert_success
	assert_output --regexp '^jsonwalk: [0-9]+ passed, 0 failed$'
}

@test "the reports: samples of a figure as a JSON object and as labelled metrics, labels escaped" {
	run "$TOP/build/unit/stats"
	assert_success
	assert_output --regexp '^stats: [0-9]+ passed, 0 failed$'
}
