#!/usr/bin/env bats
# sql/roles.sql: the tools run as unprivileged login roles that hold nothing
# but the group roles it makes (never a superuser, never the tables' owner),
# in databases where PUBLIC may not even connect; a role without the grant is
# refused with a clear error; and the roles cannot do more than their job.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	suite_start source
	# the administrator's part: the publication of logical mode
	sql -d src_template -c "CREATE PUBLICATION shop_pub FOR TABLE orders"
	createdb -T template0 wh_hard
	sql -d wh_hard -f "$TOP/sql/warehouse.sql" >/dev/null
	createdb -T template0 wh_soft
	sql -d wh_soft -f "$TOP/tests/lib/fct-orders-soft.sql" >/dev/null
	# the group roles, then the site's login roles
	PGOPTIONS='-c client_min_messages=warning' sql -f "$TOP/sql/roles.sql"
	sql <<-'EOF'
		CREATE ROLE cdc_reader LOGIN IN ROLE pgcdc_capture_trigger;
		CREATE ROLE cdc_app LOGIN IN ROLE pgcdc_log_writer;
		CREATE ROLE cdc_app_nolog LOGIN;
		CREATE ROLE cdc_wal LOGIN REPLICATION IN ROLE pgcdc_capture_logical;
		CREATE ROLE cdc_wal_norep LOGIN IN ROLE pgcdc_capture_logical;
		CREATE ROLE cdc_rep_only LOGIN REPLICATION;
		CREATE ROLE cdc_etl LOGIN IN ROLE pgcdc_apply;
		CREATE ROLE cdc_etl_ddl LOGIN IN ROLE pgcdc_apply_ddl;
		ALTER ROLE cdc_etl_ddl SET role = 'pgcdc_apply_ddl';
		CREATE ROLE cdc_nobody LOGIN;
	EOF
	# the application's own rights on its table: the site's, not roles.sql's
	sql -d src_template -c "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON orders TO cdc_app, cdc_app_nolog"
}

teardown_file() {
	load lib/common
	suite_stop
}

setup() {
	load lib/common
	WORK=$BATS_TEST_TMPDIR
	new_source_db
	harden "$DB"
}

teardown() {
	[ -n "${BG:-}" ] && kill -9 "$BG" 2>/dev/null
	drop_slot "slot_$BATS_TEST_NUMBER"
	return 0
}

# harden DB: PUBLIC may not connect, then the grants of sql/roles.sql
harden() {
	sql -d "$1" -c "REVOKE ALL ON DATABASE \"$1\" FROM PUBLIC"
	PGOPTIONS='-c client_min_messages=warning' sql -d "$1" -f "$TOP/sql/roles.sql"
}

# a fresh warehouse $WH, hardened, from wh_hard (sql/warehouse.sql) or wh_soft
new_wh() {
	WH="wh_${BATS_TEST_NUMBER}"
	dropdb --if-exists "$WH" 2>/dev/null
	createdb -T "$1" "$WH"
	harden "$WH"
}

# changes N SEED: N changes (inserts, updates, deletes) written by the
# application's role, as in production (order-sim's clients take seeds
# SEED*1000 and up, so that the keys of two calls never meet)
changes() {
	order-sim -d "dbname=$DB user=cdc_app" -q --clients 2 --count "$1" --rate 0 \
		--update-ratio 0.3 --delete-ratio 0.2 --seed "$(($2 * 1000))"
}

# ops FILE: how many events of each op, as "c:N d:N ..." in op order
ops() {
	sed -n 's/^{"op":"\([a-z]\)".*/\1/p' "$1" | sort | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? " " : ""), $2, $1 }'
}

source_rows() {
	sql -d "$DB" -c "SELECT id, status, amount_cents, version FROM orders ORDER BY id"
}

# ------------------------------------------------------------- the roles

@test "roles.sql makes five NOLOGIN group roles, none with an attribute, and a second run changes no grant" {
	run sql -c "SELECT rolname, rolcanlogin, rolsuper, rolreplication, rolcreaterole, rolcreatedb, rolbypassrls
		FROM pg_roles WHERE rolname LIKE 'pgcdc\_%' ORDER BY 1"
	assert_success
	assert_output "pgcdc_apply|f|f|f|f|f|f
pgcdc_apply_ddl|f|f|f|f|f|f
pgcdc_capture_logical|f|f|f|f|f|f
pgcdc_capture_trigger|f|f|f|f|f|f
pgcdc_log_writer|f|f|f|f|f|f"
	acls() {
		sql -d "$DB" -c "SELECT c.oid::regclass, c.relacl FROM pg_class c WHERE c.relacl::text LIKE '%pgcdc\_%' ORDER BY 1::text"
		sql -d "$DB" -c "SELECT datacl FROM pg_database WHERE datname = current_database()"
	}
	before=$(acls)
	run sql -d "$DB" -f "$TOP/sql/roles.sql"
	assert_success
	assert_equal "$(acls)" "$before"
	# exactly what trigger capture reads and writes, in this source database
	run sql -d "$DB" -c "SELECT c.oid::regclass, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
		WHERE a.grantee = 'pgcdc_capture_trigger'::regrole ORDER BY c.oid::regclass::text, 2"
	assert_output "cdc.captured|SELECT
cdc.consumer|INSERT
cdc.consumer|SELECT
cdc.consumer|UPDATE
cdc.lag|SELECT
orders|SELECT
orders_cdc_log|DELETE
orders_cdc_log|SELECT"
}

@test "a re-run takes back what a table no longer captured or published gave" {
	sql -d "$DB" -c "SELECT cdc.disable('orders')" -c "ALTER PUBLICATION shop_pub DROP TABLE orders" >/dev/null
	harden "$DB"
	run sql -d "$DB" -c "SELECT has_table_privilege('pgcdc_capture_trigger', 'orders_cdc_log', 'SELECT'),
		has_table_privilege('pgcdc_capture_trigger', 'orders', 'SELECT'),
		has_table_privilege('pgcdc_capture_logical', 'orders', 'SELECT'),
		has_table_privilege('pgcdc_log_writer', 'orders_cdc_log', 'INSERT'),
		has_table_privilege('pgcdc_capture_trigger', 'cdc.consumer', 'UPDATE')"
	assert_output "f|f|f|f|t"
}

# ------------------------------------------------------------- trigger mode

@test "trigger mode as pgcdc_capture_trigger: inserts, updates, deletes and a truncate, its position stored" {
	changes 300 1
	sql -d "$DB" -U cdc_app -c "TRUNCATE orders"
	changes 50 2
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t orders
	assert_success
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >"$WORK/events"
	# every change of the log, each op there
	assert_equal "$(wc -l <"$WORK/events")" "$(sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log")"
	assert_equal "$(ops "$WORK/events")" \
		"$(sql -d "$DB" -c "SELECT string_agg(op || ':' || n, ' ' ORDER BY op) FROM
			(SELECT op::text, count(*) n FROM orders_cdc_log GROUP BY op) x")"
	assert_output --partial '"op":"t"'
	assert_output --partial '"op":"u"'
	assert_output --partial '"op":"d"'
	# the position is stored: a second run has nothing new
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t orders
	assert_success
	assert_output ""
	run sql -d "$DB" -c "SELECT name, tbl FROM cdc.consumer"
	assert_output "pg-cdc-tail|orders"
}

@test "trigger mode as pgcdc_capture_trigger: cdc.lag shows how far behind its consumer is" {
	changes 10 1
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t orders >/dev/null
	sql -d "$DB" -U cdc_app -c "UPDATE orders SET status = 'lagging' WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 2)" >/dev/null
	run --separate-stderr sql -d "$DB" -U cdc_reader -c "SELECT consumer, tbl, changes FROM cdc.lag"
	assert_success
	assert_output "pg-cdc-tail|orders|2"
}

@test "trigger mode as pgcdc_capture_trigger: --snapshot --schema-events, then --prune deletes what it has passed" {
	changes 200 3
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_reader" -n snap --snapshot --schema-events
	assert_success
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >"$WORK/snap"
	assert_equal "$(ops "$WORK/snap")" "r:$(sql -d "$DB" -c "SELECT count(*) FROM orders") s:1"
	logged=$(sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log")
	[ "$logged" -gt 0 ]
	changes 20 4
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_reader" -n snap --prune
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(printf '%s\n' "$output" | wc -l)" 20
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM orders_cdc_log")" 0
}

@test "trigger mode as pgcdc_capture_trigger, following every table: a table enabled and granted in one transaction is followed" {
	changes 10 5
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -f >"$WORK/out" 2>"$WORK/err" &
	BG=$!
	wait_for 10 '[ "$(wc -l <"$WORK/out")" -eq 10 ]'
	sql -d "$DB" -c "CREATE TABLE customers (id int PRIMARY KEY, name text)" \
		-c "GRANT SELECT, INSERT ON customers TO cdc_app"
	PGOPTIONS='-c client_min_messages=warning' psql -X -q -1 -v ON_ERROR_STOP=1 -d "$DB" \
		-c "SELECT cdc.enable('public.customers')" -f "$TOP/sql/roles.sql" >/dev/null
	sql -d "$DB" -U cdc_app -c "INSERT INTO customers VALUES (1, 'ada'), (2, 'grace')"
	wait_for 10 '[ "$(grep -c "\"public.customers\"" "$WORK/out")" -eq 2 ]'
	kill -TERM "$BG"
	# wait in this shell, whose child it is (run's subshell may not reap it)
	local rc=0
	wait "$BG" || rc=$?
	BG=
	assert_equal "$rc" 0
	assert_equal "$(cat "$WORK/err")" 'pg-cdc-tail: following table "public.customers"'
}

@test "trigger mode: a role without pgcdc_capture_trigger is refused, exit 1" {
	changes 10 6
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_nobody" -t orders
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" 'pg-cdc-tail: connection failed: connection to server on socket "'"$PGHOST"'/.s.PGSQL.5432" failed: FATAL:  permission denied for database "'"$DB"'"'
	# PUBLIC may connect again: the next refusal is the capture's own
	sql -d "$DB" -c "GRANT CONNECT ON DATABASE \"$DB\" TO PUBLIC"
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_nobody" -t orders
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" "pg-cdc-tail: query failed: permission denied for schema cdc"
}

@test "trigger mode: pgcdc_capture_trigger cannot write the captured table, change what is captured nor enable capture" {
	changes 5 7
	run sql -d "$DB" -U cdc_reader -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 1, 'EUR', 'DE')"
	assert_failure
	assert_output --partial "permission denied for table orders"
	run sql -d "$DB" -U cdc_reader -c "DELETE FROM orders"
	assert_failure
	assert_output --partial "permission denied for table orders"
	run sql -d "$DB" -U cdc_reader -c "INSERT INTO orders_cdc_log (op, key) VALUES ('c', '{}')"
	assert_failure
	assert_output --partial "permission denied for table orders_cdc_log"
	run sql -d "$DB" -U cdc_reader -c "DELETE FROM cdc.captured"
	assert_failure
	assert_output --partial "permission denied for table captured"
	run sql -d "$DB" -U cdc_reader -c "SELECT cdc.disable('orders')"
	assert_failure
	assert_output --partial "must be owner of"
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM orders")" "$(sql -d "$DB" -U cdc_reader -c "SELECT count(*) FROM orders")"
}

@test "trigger mode: a writer of a captured table needs pgcdc_log_writer, the capture trigger runs as the writer" {
	sql -d "$DB" -c "GRANT CONNECT ON DATABASE \"$DB\" TO cdc_app_nolog"
	run sql -d "$DB" -U cdc_app_nolog -c "INSERT INTO orders (id, user_id, status, amount_cents, currency, country)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 1, 'EUR', 'DE')"
	assert_failure
	assert_output --partial "permission denied for table orders_cdc_log"
	assert_equal "$(sql -d "$DB" -c "SELECT count(*) FROM orders")" 0
	# the writer's role writes the log, and cannot read it
	run sql -d "$DB" -U cdc_app -c "SELECT count(*) FROM orders_cdc_log"
	assert_failure
	assert_output --partial "permission denied for table orders_cdc_log"
}

# ------------------------------------------------------------- logical mode

@test "logical mode as a REPLICATION login in pgcdc_capture_logical: --create-slot --snapshot, then every op, then --drop-slot" {
	changes 100 8
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_wal" --mode=logical --slot="slot_$BATS_TEST_NUMBER" \
		--publication=shop_pub -t orders --create-slot --snapshot -q
	assert_success
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >"$WORK/snap"
	assert_equal "$(ops "$WORK/snap")" "r:$(sql -d "$DB" -c "SELECT count(*) FROM orders")"
	last=$(sql -d "$DB" -c "SELECT max(id) FROM orders_cdc_log")
	changes 40 9
	sql -d "$DB" -U cdc_app -c "TRUNCATE orders"
	# the same changes the trigger log has, in op counts
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_wal" --mode=logical --slot="slot_$BATS_TEST_NUMBER" \
		--publication=shop_pub -t orders -q
	assert_success
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >"$WORK/changes"
	assert_equal "$(ops "$WORK/changes")" \
		"$(sql -d "$DB" -c "SELECT string_agg(op || ':' || n, ' ' ORDER BY op) FROM
			(SELECT op::text, count(*) n FROM orders_cdc_log WHERE id > $last GROUP BY op) x")"
	assert_output --partial '"op":"t"'
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_wal" --mode=logical --slot="slot_$BATS_TEST_NUMBER" \
		--publication=shop_pub --drop-slot -q
	assert_success
	assert_equal "$(sql -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'slot_$BATS_TEST_NUMBER'")" 0
}

@test "logical mode: REPLICATION is not inherited from a group role, the login needs it itself" {
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_wal_norep" --mode=logical --slot="slot_$BATS_TEST_NUMBER" \
		--publication=shop_pub -t orders --create-slot
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" 'pg-cdc-tail: connection failed: connection to server on socket "'"$PGHOST"'/.s.PGSQL.5432" failed: FATAL:  must be superuser or replication role to start walsender'
	assert_equal "$(sql -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'slot_$BATS_TEST_NUMBER'")" 0
}

@test "logical mode: REPLICATION without pgcdc_capture_logical cannot connect, nor --snapshot the tables" {
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_rep_only" --mode=logical --slot="slot_$BATS_TEST_NUMBER" \
		--publication=shop_pub -t orders
	assert_failure 1
	assert_output ""
	assert_regex "$stderr" 'permission denied for database "'"$DB"'"'
	# CONNECT alone (PUBLIC's, by default): the snapshot's SELECT is what it lacks
	sql -d "$DB" -c "GRANT CONNECT ON DATABASE \"$DB\" TO cdc_rep_only"
	changes 5 10
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_rep_only" --mode=logical --slot="slot_$BATS_TEST_NUMBER" \
		--publication=shop_pub -t orders --create-slot --snapshot -q
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" 'pg-cdc-tail: query failed: permission denied for table orders'
	drop_slot "slot_$BATS_TEST_NUMBER"
}

@test "logical mode: the publication is the administrator's, pgcdc_capture_logical cannot create or change it" {
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_wal" --mode=logical --slot="slot_$BATS_TEST_NUMBER" \
		--publication=new_pub -t orders --create-slot
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" "pg-cdc-tail: query failed: permission denied for database $DB"
	sql -d "$DB" -c "CREATE TABLE customers (id int PRIMARY KEY)"
	run --separate-stderr pg-cdc-tail -d "dbname=$DB user=cdc_wal" --mode=logical --slot="slot_$BATS_TEST_NUMBER" \
		--publication=shop_pub -t customers --create-slot
	assert_failure 1
	assert_equal "$stderr" "pg-cdc-tail: query failed: must be owner of publication shop_pub"
	assert_equal "$(sql -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'slot_$BATS_TEST_NUMBER'")" 0
}

# ------------------------------------------------------------- pg-upsert

@test "pg-upsert as pgcdc_apply: hard deletes with tombstones, a truncate, into the original's warehouse" {
	new_wh wh_hard
	changes 300 11
	sql -d "$DB" -U cdc_app -c "TRUNCATE orders"
	changes 300 12
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t orders >"$WORK/events"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_etl" --delete=hard \
		--map 'public.orders=analytics.fct_orders(id=order_id)' --dlq-table=analytics.failed_events <"$WORK/events"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT order_id, status, amount_cents, version FROM analytics.fct_orders ORDER BY order_id")" \
		"$(source_rows)"
	[ "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.cdc_tombstones WHERE key <> 'null'")" -gt 0 ]
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.cdc_tombstones WHERE key = 'null'")" 1
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.failed_events")" 0
	# applying again changes nothing
	before=$(sql -d "$WH" -c "SELECT * FROM analytics.fct_orders ORDER BY 1")
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_etl" --delete=hard \
		--map 'public.orders=analytics.fct_orders(id=order_id)' <"$WORK/events"
	assert_success
	assert_equal "$(sql -d "$WH" -c "SELECT * FROM analytics.fct_orders ORDER BY 1")" "$before"
}

@test "pg-upsert as pgcdc_apply: soft deletes" {
	new_wh wh_soft
	changes 300 13
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t orders >"$WORK/events"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_etl" -t analytics.fct_orders <"$WORK/events"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT id, status, amount_cents, version FROM analytics.fct_orders
		WHERE NOT is_deleted ORDER BY id")" "$(source_rows)"
	[ "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders WHERE is_deleted")" -gt 0 ]
}

@test "pg-upsert as pgcdc_apply: bad lines are dead-lettered into analytics.failed_events, the good ones applied" {
	new_wh wh_hard
	changes 20 14
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t orders >"$WORK/events"
	{
		echo 'not json'
		cat "$WORK/events"
		echo '{"op":"c","table":"public.orders","key":{"id":"nope"},"before":null,"after":{"id":"nope"},"pos":7}'
	} >"$WORK/input"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_etl" --delete=hard --dlq="$WORK/dlq" \
		--map 'public.orders=analytics.fct_orders(id=order_id)' --dlq-table=analytics.failed_events <"$WORK/input"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT convert_from(raw_value, 'UTF8') || ' | ' || error_message
		FROM analytics.failed_events ORDER BY id")" \
		'not json | not JSON: unexpected character
{"op":"c","table":"public.orders","key":{"id":"nope"},"before":null,"after":{"id":"nope"},"pos":7} | invalid input syntax for type uuid: "nope"'
	assert_equal "$(wc -l <"$WORK/dlq")" 2
	assert_equal "$(sql -d "$WH" -c "SELECT order_id, status, amount_cents, version FROM analytics.fct_orders ORDER BY order_id")" \
		"$(source_rows)"
}

@test "pg-upsert as pgcdc_apply: cannot drop, truncate or alter the table, read the dead letters or create a table" {
	new_wh wh_hard
	for stmt in "DROP TABLE analytics.fct_orders" "ALTER TABLE analytics.fct_orders ADD COLUMN x int" \
		"DROP TABLE analytics.cdc_tombstones"; do
		run sql -d "$WH" -U cdc_etl -c "$stmt"
		assert_failure
		assert_output --partial "must be owner of table"
	done
	run sql -d "$WH" -U cdc_etl -c "TRUNCATE analytics.fct_orders"
	assert_failure
	assert_output --partial "permission denied for table fct_orders"
	run sql -d "$WH" -U cdc_etl -c "SELECT * FROM analytics.failed_events"
	assert_failure
	assert_output --partial "permission denied for table failed_events"
	run sql -d "$WH" -U cdc_etl -c "DELETE FROM analytics.failed_events"
	assert_failure
	assert_output --partial "permission denied for table failed_events"
	run sql -d "$WH" -U cdc_etl -c "CREATE TABLE analytics.mine (id int)"
	assert_failure
	assert_output --partial "permission denied for schema analytics"
	assert_equal "$(sql -d "$WH" -c "SELECT to_regclass('analytics.fct_orders') IS NOT NULL")" t
}

@test "pg-upsert: a role with the schema but not pgcdc_apply's table grants is refused, exit 1" {
	new_wh wh_hard
	changes 20 15
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t orders >"$WORK/events"
	sql -d "$WH" -c "GRANT CONNECT ON DATABASE \"$WH\" TO cdc_nobody" -c "GRANT USAGE ON SCHEMA analytics TO cdc_nobody"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_nobody" --delete=hard \
		--map 'public.orders=analytics.fct_orders(id=order_id)' <"$WORK/events"
	assert_failure 1
	assert_output ""
	assert_regex "$stderr" '^pg-upsert: cannot apply to "analytics.fct_orders": permission denied for table (cdc_tombstones|fct_orders)$'
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 0
}

@test "pg-upsert: a role without pgcdc_apply cannot connect; with CONNECT, it stops at the first event naming the permission, nothing dead-lettered" {
	new_wh wh_hard
	changes 20 16
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t orders >"$WORK/events"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_nobody" --delete=hard \
		--map 'public.orders=analytics.fct_orders(id=order_id)' <"$WORK/events"
	assert_failure 1
	assert_output ""
	assert_regex "$stderr" "FATAL:  permission denied for database \"$WH\""
	# Where PUBLIC keeps CONNECT (PostgreSQL's default) the table cannot be
	# looked up for want of USAGE on its schema: a grant missing, not a bad
	# event, so pg-upsert stops with exit 1, dead-letters nothing and
	# acknowledges nothing: the events wait for the grant
	sql -d "$WH" -c "GRANT CONNECT ON DATABASE \"$WH\" TO cdc_nobody"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_nobody" --delete=hard --dlq="$WORK/dlq" \
		--ack="$WORK/ack" --map 'public.orders=analytics.fct_orders(id=order_id)' <"$WORK/events"
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" "pg-upsert: cannot look up table analytics.fct_orders: permission denied for schema analytics"
	[ ! -s "$WORK/dlq" ]
	[ "$(cat "$WORK/ack" 2>/dev/null || echo 0)" = 0 ]
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.fct_orders")" 0
}

@test "pg-upsert --create --evolve as pgcdc_apply_ddl: the table made is the group's, a column added, pgcdc_apply applies to it" {
	new_wh wh_hard
	sql -d "$DB" -c "CREATE TABLE customers (id int PRIMARY KEY, name text)" -c "GRANT INSERT ON customers TO cdc_app"
	PGOPTIONS='-c client_min_messages=warning' psql -X -q -1 -v ON_ERROR_STOP=1 -d "$DB" \
		-c "SELECT cdc.enable('public.customers')" -f "$TOP/sql/roles.sql" >/dev/null
	sql -d "$DB" -U cdc_app -c "INSERT INTO customers VALUES (1, 'ada')"
	sql -d "$DB" -c "ALTER TABLE customers ADD COLUMN email text"
	sql -d "$DB" -U cdc_app -c "INSERT INTO customers VALUES (2, 'grace', 'g@example.org')"
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t customers --schema-events >"$WORK/events"
	assert_equal "$(ops "$WORK/events")" "c:2 s:2"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_etl_ddl" --map 'public.*=analytics.*' --create --evolve \
		<"$WORK/events"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql -d "$WH" -c "SELECT id, name, email FROM analytics.customers ORDER BY id")" "1|ada|
2|grace|g@example.org"
	assert_equal "$(sql -d "$WH" -c "SELECT tableowner FROM pg_tables WHERE tablename = 'customers'")" pgcdc_apply_ddl
	# a plain pgcdc_apply login applies to it (the default privileges), and cannot alter it
	sql -d "$DB" -U cdc_app -c "INSERT INTO customers VALUES (3, 'edsger', 'e@example.org')"
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t customers -n second >"$WORK/events"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_etl" --map 'public.*=analytics.*' <"$WORK/events"
	assert_success
	assert_equal "$(sql -d "$WH" -c "SELECT count(*) FROM analytics.customers")" 3
	run sql -d "$WH" -U cdc_etl -c "ALTER TABLE analytics.customers ADD COLUMN x int"
	assert_failure
	assert_output --partial "must be owner of table customers"
}

@test "pg-upsert --create as pgcdc_apply alone: the table is refused with the permission named, its events dead-lettered" {
	new_wh wh_hard
	sql -d "$DB" -c "CREATE TABLE customers (id int PRIMARY KEY, name text)" -c "GRANT INSERT ON customers TO cdc_app"
	PGOPTIONS='-c client_min_messages=warning' psql -X -q -1 -v ON_ERROR_STOP=1 -d "$DB" \
		-c "SELECT cdc.enable('public.customers')" -f "$TOP/sql/roles.sql" >/dev/null
	sql -d "$DB" -U cdc_app -c "INSERT INTO customers VALUES (1, 'ada')"
	pg-cdc-tail -d "dbname=$DB user=cdc_reader" -t customers --schema-events >"$WORK/events"
	run --separate-stderr pg-upsert -d "dbname=$WH user=cdc_etl" --map 'public.*=analytics.*' --create \
		--dlq="$WORK/dlq" <"$WORK/events"
	assert_output ""
	assert_regex "$stderr" 'cannot create table analytics\.customers: permission denied for schema analytics'
	assert_equal "$(wc -l <"$WORK/dlq")" 2
	assert_equal "$(sql -d "$WH" -c "SELECT to_regclass('analytics.customers') IS NULL")" t
}
