#!/usr/bin/env bash
# pg-upsert applying N events (default 300,000) over KEYS keys (default
# 30,000), against the COPY-per-batch floor on the same events: per 10,000
# rows, in one transaction, TRUNCATE stage; COPY stage FROM STDIN;
# INSERT .. SELECT DISTINCT ON (key) .. ORDER BY key, pos DESC
# ON CONFLICT (key) DO UPDATE .. WHERE t.pos < excluded.pos; COMMIT.
# Both run with synchronous_commit on, one commit per batch.
#
# Two warehouse shapes (SHAPES, default "soft hard"): soft is the suites'
# tests/lib/fct-orders-soft.sql (key id, soft deletes), hard is
# sql/warehouse.sql (key order_id by --map, hard deletes guarded by
# analytics.cdc_tombstones).  There a change must not bring back a key
# deleted after it, so the floor's INSERT also skips the rows a tombstone
# (of the key, or the table's) at or above their pos covers, as anyone
# applying to that warehouse by hand must.  RUNS (default 1): the best of
# that many runs.
# PG_UPSERT: the binary to measure (default: this tree's pg-upsert).  It
# runs with --batch=10000 and --linger=1000: the events are all there, a
# batch is cut by its size, as the floor's are.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${1:-300000}
KEYS=${KEYS:-30000}
RUNS=${RUNS:-1}
SHAPES=${SHAPES:-soft hard}
BATCH=10000
PG_UPSERT=${PG_UPSERT:-pg-upsert}

work=$(mktemp -d)
# durable commits, as a warehouse runs
pg_start fsync=on synchronous_commit=on full_page_writes=on >/dev/null
trap 'pg_destroy; rm -rf "$work"' EXIT

# the same N changes as CDC events and as COPY rows
awk -v n="$N" -v keys="$KEYS" -v ev="$work/events" -v tsv="$work/rows.tsv" 'BEGIN {
	split("created paid shipped delivered", st, " ")
	for (i = 1; i <= n; i++) {
		k = i % keys; v = int(i / keys) + 1
		id = sprintf("00000000-0000-4000-8000-%012d", k)
		uid = sprintf("00000000-0000-4000-9000-%012d", k % 997)
		s = st[v % 4 + 1]; amt = (i * 7919) % 100000
		ts = sprintf("2026-11-26T10:%02d:%02d.%06d+00:00", int(i / 60000) % 60, int(i / 1000) % 60, i % 1000000)
		printf "{\"op\":\"u\",\"table\":\"public.orders\",\"key\":{\"id\":\"%s\"},\"before\":null,\"after\":{\"id\":\"%s\",\"user_id\":\"%s\",\"status\":\"%s\",\"amount_cents\":%d,\"currency\":\"EUR\",\"country\":\"DE\",\"created_at\":\"2026-11-26T10:00:00+00:00\",\"updated_at\":\"%s\",\"version\":%d},\"pos\":%d,\"txid\":%d,\"ts_ms\":1795694000000}\n", id, id, uid, s, amt, ts, v, i, i >ev
		printf "%s\t%s\t%s\t%d\tEUR\tDE\t2026-11-26T10:00:00+00:00\t%s\t%d\t%d\n", id, uid, s, amt, ts, v, i >tsv
	}
}'

# floor_sql KEY [TOMBS]: the floor's script, the rows in batches inline (COPY
# FROM STDIN reads the script); TOMBS: guarded by that tombstone table too
floor_sql() {
	local key=$1 tombs=${2:-} cols guard=
	cols="$key, user_id, status, amount_cents, currency, country, created_at, updated_at, version, cdc_pos"
	[ -z "$tombs" ] || guard="WHERE NOT EXISTS (SELECT FROM $tombs AS tb WHERE tb.tbl = 'analytics.fct_orders'"
	[ -z "$tombs" ] || guard="$guard AND tb.key IN (jsonb_build_object('$key', s.id), 'null') AND tb.pos >= s.cdc_pos)"
	echo "CREATE TEMP TABLE stage (id uuid, user_id uuid, status text, amount_cents bigint, currency text,
	country text, created_at timestamptz, updated_at timestamptz, version bigint, cdc_pos numeric);"
	awk -v b="$BATCH" -v cols="$cols" -v key="$key" -v guard="$guard" '
	function flush() {
		print "\\."
		printf "INSERT INTO analytics.fct_orders AS t (%s, last_cdc_ts)\n", cols
		printf "SELECT DISTINCT ON (id) id, user_id, status, amount_cents, currency, country, created_at, updated_at, version, cdc_pos, now()\n"
		printf "FROM stage AS s %s ORDER BY id, cdc_pos DESC ON CONFLICT (%s) DO UPDATE SET user_id = excluded.user_id,\n", guard, key
		printf "status = excluded.status, amount_cents = excluded.amount_cents, currency = excluded.currency,\n"
		printf "country = excluded.country, created_at = excluded.created_at, updated_at = excluded.updated_at,\n"
		printf "version = excluded.version, cdc_pos = excluded.cdc_pos, last_cdc_ts = excluded.last_cdc_ts\n"
		printf "WHERE t.cdc_pos < excluded.cdc_pos;\nCOMMIT;\n"
	}
	(NR - 1) % b == 0 { if (NR > 1) flush(); print "BEGIN;\nTRUNCATE stage;\nCOPY stage FROM STDIN;" }
	{ print }
	END { if (NR > 0) flush() }' "$work/rows.tsv"
}

# run_shape SHAPE: floor and pg-upsert on fresh databases, best of RUNS; sets FLOOR, OURS
run_shape() {
	local shape=$1 schema key args r q tombs=
	if [ "$shape" = soft ]; then
		schema=$TOP/tests/lib/fct-orders-soft.sql key=id args="-t analytics.fct_orders"
	else
		schema=$TOP/sql/warehouse.sql key=order_id args="--map 'public.orders=analytics.fct_orders(id=order_id)'"
		tombs=analytics.cdc_tombstones
	fi
	floor_sql "$key" "$tombs" >"$work/floor.sql"
	FLOOR= OURS=
	for r in $(seq "$RUNS"); do
		for db in floor ours; do
			dropdb --if-exists "$db" 2>/dev/null
			createdb "$db"
			sql -d "$db" -f "$schema" >/dev/null
		done
		measure floor "psql -X -q -v ON_ERROR_STOP=1 -d floor -f '$work/floor.sql'"
		if [ -z "$FLOOR" ] || awk -v a="$SECS" -v b="$FLOOR" 'BEGIN { exit !(a < b) }'; then FLOOR=$SECS; fi
		measure ours "$PG_UPSERT -d ours --batch=$BATCH --linger=1000 $args <'$work/events'"
		if [ -z "$OURS" ] || awk -v a="$SECS" -v b="$OURS" 'BEGIN { exit !(a < b) }'; then OURS=$SECS; fi
		q="SELECT md5(string_agg(concat_ws('|', $key, user_id, status, amount_cents, currency, country,
			created_at, updated_at, version, cdc_pos), ',' ORDER BY $key)) FROM analytics.fct_orders"
		[ "$(sql -d ours -c "$q")" = "$(sql -d floor -c "$q")" ] ||
			{ echo "bench: pg-upsert and the floor disagree ($shape)" >&2; exit 1; }
	done
}

header "warehouse apply, $N events over $KEYS keys"
for shape in $SHAPES; do
	run_shape "$shape"
	SECS=$FLOOR RSS_KB=0; row "floor, $shape: COPY + INSERT per $BATCH" "$N"
	SECS=$OURS RSS_KB=0; row "pg-upsert, $shape" "$N"
	goal "pg-upsert / COPY floor ($shape)" "$(awk -v f="$FLOOR" -v o="$OURS" 'BEGIN { printf "%.2fx", f / o }')" \
		"floor $(awk -v n="$N" -v f="$FLOOR" 'BEGIN { printf "%.0f", n / f }') ev/s" ">= 0.9x"
done
