#!/usr/bin/env bash
# pg-upsert applying N events (default 1,000,000) over 50,000 keys, against
# the floor (COPY into a staging table, then one set-based
# INSERT ... SELECT ... ON CONFLICT per 10,000 rows) and plain psql (one
# INSERT ... ON CONFLICT per event, on the first PSQL_N events, default 100,000).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}
PSQL_N=${PSQL_N:-100000}
KEYS=50000

work=$(mktemp -d)
# durable commits, as a warehouse runs: what one commit per event costs is the point
pg_start fsync=on synchronous_commit=on full_page_writes=on >/dev/null
trap 'pg_destroy; rm -rf "$work"' EXIT
for db in ours floor plain; do
	createdb "$db"
	sql -d "$db" -f "$TOP/tests/lib/fct-orders-soft.sql" >/dev/null
done
cols="id, user_id, status, amount_cents, currency, country, created_at, updated_at, version"
sql -d floor -c "CREATE UNLOGGED TABLE staging (id uuid, user_id uuid, status text, amount_cents bigint,
	currency text, country text, created_at timestamptz, updated_at timestamptz, version bigint,
	cdc_pos numeric, n bigint)"

# the same N changes as CDC events, as COPY rows and as INSERT statements
awk -v n="$N" -v keys="$KEYS" -v pn="$PSQL_N" -v ev="$work/events" -v tsv="$work/rows.tsv" -v sqlf="$work/plain.sql" 'BEGIN {
	split("created paid shipped delivered", st, " ")
	for (i = 1; i <= n; i++) {
		k = i % keys; v = int(i / keys) + 1
		id = sprintf("00000000-0000-4000-8000-%012d", k)
		uid = sprintf("00000000-0000-4000-9000-%012d", k % 997)
		s = st[v % 4 + 1]; amt = (i * 7919) % 100000
		ts = sprintf("2026-11-26T10:%02d:%02d.%06d+00:00", int(i / 60000) % 60, int(i / 1000) % 60, i % 1000000)
		printf "{\"op\":\"u\",\"table\":\"public.orders\",\"key\":{\"id\":\"%s\"},\"before\":null,\"after\":{\"id\":\"%s\",\"user_id\":\"%s\",\"status\":\"%s\",\"amount_cents\":%d,\"currency\":\"EUR\",\"country\":\"DE\",\"created_at\":\"2026-11-26T10:00:00+00:00\",\"updated_at\":\"%s\",\"version\":%d},\"pos\":%d,\"txid\":%d,\"ts_ms\":1795694000000}\n", id, id, uid, s, amt, ts, v, i, i >ev
		printf "%s\t%s\t%s\t%d\tEUR\tDE\t2026-11-26T10:00:00+00:00\t%s\t%d\t%d\t%d\n", id, uid, s, amt, ts, v, i, i >tsv
		if (i <= pn)
			printf "INSERT INTO analytics.fct_orders AS t (id, user_id, status, amount_cents, currency, country, created_at, updated_at, version, cdc_pos, last_cdc_ts) VALUES (%c%s%c, %c%s%c, %c%s%c, %d, %cEUR%c, %cDE%c, %c2026-11-26T10:00:00+00:00%c, %c%s%c, %d, %d, now()) ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, status = excluded.status, amount_cents = excluded.amount_cents, currency = excluded.currency, country = excluded.country, created_at = excluded.created_at, updated_at = excluded.updated_at, version = excluded.version, cdc_pos = excluded.cdc_pos, last_cdc_ts = excluded.last_cdc_ts WHERE t.cdc_pos < excluded.cdc_pos;\n", 39, id, 39, 39, uid, 39, 39, s, 39, amt, 39, 39, 39, 39, 39, 39, 39, ts, 39, v, i >sqlf
	}
}'
batches=$(( (N + 9999) / 10000 ))
{
	echo "\\copy staging FROM '$work/rows.tsv'"
	for b in $(seq 0 $((batches - 1))); do
		echo "INSERT INTO analytics.fct_orders AS t ($cols, cdc_pos, last_cdc_ts)
		SELECT DISTINCT ON (id) $cols, cdc_pos, now() FROM staging
		WHERE n > $((b * 10000)) AND n <= $(((b + 1) * 10000)) ORDER BY id, cdc_pos DESC
		ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, status = excluded.status,
		amount_cents = excluded.amount_cents, currency = excluded.currency, country = excluded.country,
		created_at = excluded.created_at, updated_at = excluded.updated_at, version = excluded.version,
		cdc_pos = excluded.cdc_pos, last_cdc_ts = excluded.last_cdc_ts WHERE t.cdc_pos < excluded.cdc_pos;"
	done
} >"$work/floor.sql"

header "warehouse apply, $N events over $KEYS keys"
measure floor "psql -X -q -v ON_ERROR_STOP=1 -d floor -f '$work/floor.sql'"
floor=$SECS; row "COPY + INSERT..SELECT per 10,000 (floor)" "$N"
measure plain "psql -X -q -v ON_ERROR_STOP=1 -d plain -f '$work/plain.sql'"
plain=$SECS; row "psql, one INSERT .. ON CONFLICT each" "$PSQL_N"
measure ours "pg-upsert -d ours -t analytics.fct_orders <'$work/events'"
ours=$SECS; row "pg-upsert" "$N"
q="SELECT md5(string_agg(concat_ws('|', $cols, cdc_pos), ',' ORDER BY id)) FROM analytics.fct_orders"
[ "$(sql -d ours -c "$q")" = "$(sql -d floor -c "$q")" ] || { echo "bench: pg-upsert and the floor disagree" >&2; exit 1; }
awk -v f="$floor" -v p="$plain" -v o="$ours" -v n="$N" -v pn="$PSQL_N" 'BEGIN {
	printf "pg-upsert rows/s / floor rows/s:      %.2f\n", f / o
	printf "pg-upsert rows/s / plain psql rows/s: %.1f\n", (n / o) / (pn / p) }'
