#!/usr/bin/env bats
# pgcdc-pair, the supervisor under cdc-source and cdc-sink, with stand-in
# stages that log the signals they get: which stage a signal goes to, in
# which order, how a failure is attributed, the stop timeout, and stages
# dying with a supervisor killed by SIGKILL.  The real stages run under it
# in composition.bats.

bats_require_minimum_version 1.5.0

setup() {
	load lib/common
	DIR=$BATS_TEST_TMPDIR
	export LOG=$DIR/log
	: >"$LOG"
	# stage LEFT MODE: logs "NAME HUP", "NAME USR1" for those signals and
	# "NAME TERM" for each SIGTERM and exits 0 at
	# the LEFT-th (never if 0); MODE write: a line every 50 ms; read: reads
	# to the end of its input, then logs "NAME eof" and exits 0; hold:
	# neither reads nor writes.  NAME is the name it runs under: up, down.
	cat >"$DIR/up" <<-'EOF'
		#!/bin/bash
		name=${0##*/} left=$1 n=0
		trap 'echo "$name TERM" >>"$LOG"; n=$((n + 1))
			[ "$left" -eq 0 ] || [ "$n" -lt "$left" ] || exit 0' TERM
		trap 'echo "$name HUP" >>"$LOG"' HUP
		trap 'echo "$name USR1" >>"$LOG"' USR1
		case $2 in
		write) while :; do echo line; sleep 0.05; done ;;
		hold) while :; do sleep 0.05; done ;;
		read)
			while :; do
				IFS= read -r -t 0.05 _ && continue
				[ $? -gt 128 ] || break
			done
			echo "$name eof" >>"$LOG" ;;
		esac
	EOF
	chmod +x "$DIR/up"
	cp "$DIR/up" "$DIR/down"
	PAIR=
}

teardown() {
	local p
	[ -z "$PAIR" ] && return 0
	for p in $(pgrep -P "$PAIR") "$PAIR"; do
		kill -9 "$p" 2>/dev/null
	done
	wait "$PAIR" 2>/dev/null
	return 0
}

# start_pair ARGS...: pgcdc-pair ARGS in the background, PAIR its pid;
# waits until both stages run
start_pair() {
	pgcdc-pair "$@" </dev/null >/dev/null 2>"$DIR/err" 3>&- &
	PAIR=$!
	wait_for 10 '[ "$(pgrep -P "$PAIR" | wc -l)" -eq 2 ]'
	STAGES=$(pgrep -P "$PAIR" | tr '\n' ' ')
}

# finish SECONDS: wait for pgcdc-pair to end; STATUS its exit status
finish() {
	wait_for "$1" "! kill -0 $PAIR 2>/dev/null" || return 1
	STATUS=0
	wait "$PAIR" || STATUS=$?
	PAIR=
}

gone() {
	local p
	for p; do
		! kill -0 "$p" 2>/dev/null || return 1
	done
}

@test "pgcdc-pair --help prints the usage and exits 0; usage errors exit 2" {
	run --separate-stderr pgcdc-pair --help
	assert_success
	assert_line --index 0 "Usage: pgcdc-pair [-hqVv] [-n NAME] [-t SECONDS] [--] UPSTREAM [ARG]... '|' DOWNSTREAM [ARG]..."
	run --separate-stderr pgcdc-pair -- cat
	assert_failure 2
	assert_equal "$stderr" 'pgcdc-pair: error: no "|" between the two commands
Try "pgcdc-pair --help" for more information.'
	run --separate-stderr pgcdc-pair -n cdc-x cat '|'
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'cdc-x: error: no downstream command after "|"'
	run --separate-stderr pgcdc-pair -t 0 cat '|' cat
	assert_failure 2
	assert_equal "${stderr_lines[0]}" 'pgcdc-pair: error: --timeout must be in range 1..86400'
}

@test "the pipe joins the stages, their options are their own, and both exiting 0 is exit 0" {
	run --separate-stderr pgcdc-pair -- printf '%s\n' -t b '|' sort -r
	assert_success
	assert_output "b
-t"
	assert_equal "$stderr" ""
}

@test "the pipe holds 1 MiB: an upstream ahead of a busy downstream writes on without blocking" {
	# 768 KiB, more than Linux's 64 KiB default pipe: the upstream finishes
	# writing while the downstream has not read a byte yet
	run --separate-stderr pgcdc-pair -- sh -c "head -c 786432 /dev/zero && : >'$DIR/written'" '|' \
		sh -c "i=0; while [ ! -e '$DIR/written' ]; do
			i=\$((i + 1)); [ \$i -le 100 ] || { echo 'upstream blocked' >&2; exit 1; }; sleep 0.05
		done; wc -c"
	assert_success
	assert_output 786432
	assert_equal "$stderr" ""
}

@test "SIGTERM goes to the upstream alone; the downstream reads to the end of its input; exit 0" {
	start_pair "$DIR/up" 1 write '|' "$DIR/down" 1 read
	kill -TERM "$PAIR"
	finish 10
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$LOG")" "up TERM
down eof"
	assert_equal "$(cat "$DIR/err")" ""
	# shellcheck disable=SC2086
	gone $STAGES
}

@test "SIGHUP and SIGUSR1 are passed on to both stages, which run on (systemctl reload, logrotate)" {
	start_pair "$DIR/up" 1 write '|' "$DIR/down" 1 read
	kill -HUP "$PAIR"
	wait_for 5 '[ "$(sort "$LOG")" = "down HUP
up HUP" ]' || fail "the stages got: $(cat "$LOG")"
	kill -USR1 "$PAIR"
	wait_for 5 '[ "$(grep -c USR1 "$LOG")" -eq 2 ]' || fail "the stages got: $(cat "$LOG")"
	assert_equal "$(sort "$LOG")" "down HUP
down USR1
up HUP
up USR1"
	kill -TERM "$PAIR"
	finish 10
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$DIR/err")" ""
}

@test "a second signal hurries both stages: SIGTERM twice to each" {
	start_pair "$DIR/up" 3 hold '|' "$DIR/down" 2 hold
	kill -TERM "$PAIR"
	wait_for 5 '[ "$(cat "$LOG")" = "up TERM" ]'
	kill -INT "$PAIR"
	finish 10
	assert_equal "$STATUS" 0
	assert_equal "$(grep -c 'up TERM' "$LOG")" 3
	assert_equal "$(grep -c 'down TERM' "$LOG")" 2
}

@test "the downstream failing: the upstream is hurried, the message names the downstream, and its status is the exit status" {
	start_pair "$DIR/up" 2 hold '|' sh -c 'sleep 0.3; exit 3'
	finish 10
	assert_equal "$STATUS" 3
	assert_equal "$(cat "$LOG")" "up TERM
up TERM"
	assert_equal "$(cat "$DIR/err")" "pgcdc-pair: sh exited with status 3"
}

@test "the downstream failing while the upstream dies of SIGPIPE: the downstream is named, whichever ends first" {
	local i
	# yes dies writing to the closed pipe, before or after sh is reaped
	for i in 1 2 3 4 5 6 7 8; do
		run -3 --separate-stderr pgcdc-pair yes '|' sh -c 'exit 3'
		assert_equal "$stderr" "pgcdc-pair: sh exited with status 3"
	done
}

@test "the downstream killed with -9: it is named, not the upstream's broken pipe; exit 1" {
	start_pair -n cdc-test "$DIR/up" 2 write '|' "$DIR/down" 0 hold
	kill -9 "$(pgrep -P "$PAIR" -f "$DIR/down")"
	finish 10
	assert_equal "$STATUS" 1
	assert_equal "$(cat "$DIR/err")" "cdc-test: down was killed by signal 9"
	# shellcheck disable=SC2086
	gone $STAGES
}

@test "the upstream killed with -9: the downstream finishes its input, the upstream is named; exit 1" {
	start_pair "$DIR/up" 0 write '|' "$DIR/down" 0 read
	kill -9 "$(pgrep -P "$PAIR" -f "$DIR/up")"
	finish 10
	assert_equal "$STATUS" 1
	assert_equal "$(cat "$LOG")" "down eof"
	assert_equal "$(cat "$DIR/err")" "pgcdc-pair: up was killed by signal 9"
}

@test "a stage that ignores SIGTERM is hurried after the timeout and killed 5 s later" {
	start_pair -t 1 "$DIR/up" 0 hold '|' "$DIR/down" 1 hold
	start=$SECONDS
	kill -TERM "$PAIR"
	finish 15
	[ $((SECONDS - start)) -ge 6 ]
	[ $((SECONDS - start)) -le 8 ]
	assert_equal "$STATUS" 1
	# the first SIGTERM, then the hurries (at 1 s, and as down stops)
	[ "$(grep -c 'up TERM' "$LOG")" -ge 2 ]
	assert_equal "$(grep -c 'down TERM' "$LOG")" 1
	assert_equal "$(cat "$DIR/err")" "pgcdc-pair: warning: up has not stopped after 1 s; stopping it
pgcdc-pair: warning: down has not stopped after 1 s; stopping it
pgcdc-pair: warning: up has not stopped; killing it
pgcdc-pair: up was killed by signal 9"
}

@test "pgcdc-pair killed with -9: the kernel sends each stage SIGTERM and none is left" {
	start_pair "$DIR/up" 1 hold '|' "$DIR/down" 1 hold
	kill -9 "$PAIR"
	wait "$PAIR" 2>/dev/null || true
	PAIR=
	# shellcheck disable=SC2086
	wait_for 5 "gone $STAGES"
	assert_equal "$(sort "$LOG")" "down TERM
up TERM"
}

@test "a command that cannot run: exit 127, and its partner stops" {
	run -127 --separate-stderr pgcdc-pair "$DIR/up" 1 hold '|' "$DIR/no-such-stage"
	assert_equal "$stderr" "pgcdc-pair: cannot run \"$DIR/no-such-stage\": No such file or directory
pgcdc-pair: no-such-stage exited with status 127"
}

@test "under systemd, pgcdc-pair speaks for the pair: READY=1 once both are, STATUS= of both, WATCHDOG=1 while both ping" {
	# notifier NAME: sends READY=1 once $DIR/NAME.go exists, then its
	# status (saying whether WATCHDOG_PID is its own pid) and a ping each
	# 100 ms until $DIR/NAME.hang exists; each with socat, a process of its
	# own; "two" exits at the end of its input
	cat >"$DIR/notifier" <<-'EOF'
		#!/bin/bash
		name=${0##*/}
		n() { printf '%s\n' "$1" | socat -u - "ABSTRACT-SENDTO:${NOTIFY_SOCKET#@}"; }
		trap 'exit 0' TERM
		while [ ! -e "$DIR/$name.go" ]; do sleep 0.05; done
		n READY=1
		[ "$WATCHDOG_PID" = $$ ] && n "STATUS=$name ok, WATCHDOG_USEC=$WATCHDOG_USEC" || n "STATUS=$name: WATCHDOG_PID $WATCHDOG_PID"
		while :; do
			[ -e "$DIR/$name.hang" ] || n WATCHDOG=1
			# the downstream ends at the end of its input
			if [ "$name" = two ]; then
				IFS= read -r -t 0.1 _ || [ $? -gt 128 ] || exit 0
			else
				sleep 0.1
			fi
		done
	EOF
	chmod +x "$DIR/notifier"
	ln -s notifier "$DIR/one"
	ln -s notifier "$DIR/two"
	export DIR
	socat -u UNIX-RECV:"$DIR/notify" - >"$DIR/heard" 2>/dev/null 3>&- &
	SOCAT=$!
	wait_for 10 '[ -S "$DIR/notify" ]'
	NOTIFY_SOCKET=$DIR/notify WATCHDOG_USEC=2000000 start_pair "$DIR/one" '|' "$DIR/two"
	# the first stage is ready, the second not yet: the pair is not
	touch "$DIR/one.go"
	wait_for 10 'grep -q "one ok" "$DIR/heard"'
	sleep 0.3
	assert_equal "$(cat "$DIR/heard")" "STATUS=one: one ok, WATCHDOG_USEC=2000000; two: starting"
	touch "$DIR/two.go"
	wait_for 10 'grep -q "two ok" "$DIR/heard"'
	wait_for 10 '[ "$(grep -c "^WATCHDOG=1" "$DIR/heard")" -ge 3 ]'
	assert_equal "$(sed -n 2p "$DIR/heard")" READY=1
	assert_equal "$(grep -c '^READY=1' "$DIR/heard")" 1
	grep -qx 'STATUS=one: one ok, WATCHDOG_USEC=2000000; two: two ok, WATCHDOG_USEC=2000000' "$DIR/heard"
	# one stage hangs: the pings stop, so that systemd restarts the unit
	touch "$DIR/two.hang"
	sleep 0.3
	before=$(grep -c '^WATCHDOG=1' "$DIR/heard")
	sleep 1
	assert_equal "$(grep -c '^WATCHDOG=1' "$DIR/heard")" "$before"
	kill -TERM "$PAIR"
	finish 10
	kill "$SOCAT"
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$DIR/err")" ""
}

@test "without NOTIFY_SOCKET the stages get none from pgcdc-pair" {
	# bash waits for sleep (": " after it): sleep itself closes its standard
	# output before it exits, and the downstream, ending first, would have
	# it hurried, and killed, in between
	start_pair bash -c 'echo "[${NOTIFY_SOCKET-unset}]" >"$0"; sleep 0.2; :' "$DIR/seen" '|' cat
	finish 10
	assert_equal "$STATUS" 0
	assert_equal "$(cat "$DIR/seen")" "[unset]"
}
