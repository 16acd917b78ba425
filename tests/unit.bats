#!/usr/bin/env bats
# C unit tests of src/common, built by `make unit`.

setup() {
	load lib/common
}

@test "the JSON scanner accepts exactly RFC 8259 texts and finds keys" {
	run "$TOP/build/unit/jsonscan"
	assert_success
	assert_output --regexp 'jsonscan: [0-9]+ passed, 0 failed$'
}
