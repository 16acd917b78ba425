#!/usr/bin/env bats
# pg-cdc-tail --mode=logical on a slot still held by a predecessor: without
# -f it waits up to 10 s for the slot, which it recognises by SQLSTATE 55006,
# whatever language the server's messages are in.  The server runs with a
# German locale compiled here (LOCPATH), so lc_messages can be set to it.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	LOCALE_DIR=$(mktemp -d)
	chmod 755 "$LOCALE_DIR"
	localedef -i de_DE -f UTF-8 "$LOCALE_DIR/de_DE.UTF-8" >/dev/null 2>&1 || {
		echo "cannot compile the de_DE.UTF-8 locale (Debian package locales)" >&2
		return 1
	}
	export LOCALE_DIR
	LOCPATH=$LOCALE_DIR pg_start
	make_source_template
}

teardown_file() {
	load lib/common
	pg_destroy
	rm -rf "$LOCALE_DIR"
}

setup() {
	load lib/common
	new_source_db
	SLOT="slot_${BATS_TEST_NUMBER}"
	LOGICAL=(pg-cdc-tail -d "$DB" --mode=logical --slot="$SLOT" --publication=pub)
	WORK=$(mktemp -d)
}

teardown() {
	[ -n "${BG:-}" ] && kill -9 $BG 2>/dev/null
	wait_for 10 "[ \"\$(sql -c \"SELECT count(*) FROM pg_replication_slots
		WHERE slot_name = '$SLOT' AND active\")\" = 0 ]" || true
	sql -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = '$SLOT'" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}

# busy_slot LC_MESSAGES: a second capture, with the server's messages in that
# language, starts while a first one holds the slot and stops 1 s later
busy_slot() {
	"${LOGICAL[@]}" --create-slot -t orders >/dev/null
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'first', 1, 'EUR', 'DE')"
	"${LOGICAL[@]}" -f >"$WORK/first" 2>"$WORK/first.err" 3>&- &
	BG=$!
	wait_for 10 "[ \$(wc -l <'$WORK/first') -eq 1 ]"
	sql -d "$DB" -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'second', 2, 'EUR', 'DE')"
	wait_for 10 "[ \$(wc -l <'$WORK/first') -eq 2 ]"
	# the first one confirms what it wrote, then gives the slot up
	( sleep 1; kill -TERM $BG ) 3>&- &
	run --separate-stderr env PGOPTIONS="-c lc_messages=$1" "${LOGICAL[@]}"
}

@test "a busy slot is waited for under an English lc_messages" {
	busy_slot C
	assert_success
	assert_output ""
	assert_regex "${stderr_lines[0]}" '^pg-cdc-tail: cannot start streaming from slot "slot_[0-9]+": .*replication slot "slot_[0-9]+" is active for PID [0-9]+$'
	assert_equal "${stderr_lines[1]}" "pg-cdc-tail: retrying in 100 ms"
}

@test "a busy slot is waited for under a German lc_messages (known by SQLSTATE 55006, not by its text)" {
	busy_slot de_DE.UTF-8
	assert_success
	assert_output ""
	assert_regex "${stderr_lines[0]}" '^pg-cdc-tail: cannot start streaming from slot "slot_[0-9]+": .*Replikations-Slot »slot_[0-9]+« ist aktiv für PID [0-9]+$'
	assert_equal "${stderr_lines[1]}" "pg-cdc-tail: retrying in 100 ms"
}
