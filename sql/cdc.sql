-- pgcdc trigger-mode capture machinery.  Re-runnable: psql -v ON_ERROR_STOP=1 -f cdc.sql
--
-- cdc.enable('schema.table') gives any table with a primary key a change log
-- <table>_cdc_log beside it and an AFTER ROW trigger writing one log row per
-- change: op, key, old row, new row, the writing transaction's id; and an
-- AFTER TRUNCATE trigger writing one row of op 't' (key JSON null) per
-- TRUNCATE.  Both NOTIFY pgcdc, which a following pg-cdc-tail LISTENs on.  TRUNCATE takes an ACCESS EXCLUSIVE lock, so every writer of the
-- table before it has committed when its log id is taken, and every writer
-- after it waits for it: the truncate's log id lies between the two.
-- pg-cdc-tail reads the log in batches bounded by transaction snapshots (as
-- PgQ does), so a transaction that took its log ids early and committed late is
-- never skipped.  Its consumers' positions live in cdc.consumer.
--
-- When installed by a superuser, an event trigger writes a row of op 's' into
-- a captured table's log at each ALTER TABLE of it, holding the table's
-- columns and primary key after the change (cdc.schema): the lock ALTER TABLE
-- takes puts it between the changes made before and after, so pg-cdc-tail
-- --schema-events knows the columns each change was written with.

CREATE SCHEMA IF NOT EXISTS cdc;

-- Tables with capture enabled and the log each writes to.
CREATE TABLE IF NOT EXISTS cdc.captured (
	tbl         regclass PRIMARY KEY,
	log         regclass NOT NULL,
	key_columns text[]   NOT NULL
);
-- The table's schema (cdc.schema) when capture was enabled: what the log rows
-- before its first schema row were written with.
ALTER TABLE cdc.captured ADD COLUMN IF NOT EXISTS schema json;

-- Each consumer's durable position for one table.  Every transaction visible
-- in snap_lo has been delivered (NULL: none yet).  When snap_hi is set, the
-- batch of transactions visible in snap_hi but not in snap_lo is delivered up
-- to and including log id last_id.
CREATE TABLE IF NOT EXISTS cdc.consumer (
	name       text        NOT NULL,
	tbl        regclass    NOT NULL,
	snap_lo    pg_snapshot,
	snap_hi    pg_snapshot,
	last_id    bigint      NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (name, tbl)
);

-- Enable capture on table t.  Idempotent; returns the log table.
CREATE OR REPLACE FUNCTION cdc.enable(t regclass) RETURNS regclass
LANGUAGE plpgsql AS $fn$
DECLARE
	nsp     text;
	rel     text;
	logrel  text;
	keys    text[];
	newkey  text;
	oldkey  text;
	keydiff text;
	capture text;
BEGIN
	SELECT n.nspname, c.relname INTO nsp, rel
	  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.oid = t;

	SELECT array_agg(a.attname::text ORDER BY k.ord) INTO keys
	  FROM pg_index i
	 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
	  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
	 WHERE i.indrelid = t AND i.indisprimary;
	IF keys IS NULL THEN
		RAISE EXCEPTION 'table % has no primary key', t;
	END IF;

	logrel := rel || '_cdc_log';
	capture := rel || '_cdc_capture';
	EXECUTE format($$
		CREATE TABLE IF NOT EXISTS %I.%I (
			id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			txid   xid8        NOT NULL DEFAULT pg_current_xact_id(),
			op     "char"      NOT NULL,
			ts     timestamptz NOT NULL DEFAULT clock_timestamp(),
			key    json        NOT NULL,
			before json,
			after  json,
			old_key json
		)$$, nsp, logrel);
	-- a log made by an older cdc.sql: old_key (the insert half of a key change)
	-- is new; the check keeps a re-run from locking a log that has it
	IF NOT EXISTS (SELECT FROM pg_attribute
	                WHERE attrelid = format('%I.%I', nsp, logrel)::regclass
	                  AND attname = 'old_key' AND NOT attisdropped) THEN
		EXECUTE format('ALTER TABLE %I.%I ADD COLUMN old_key json', nsp, logrel);
	END IF;
	EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I (txid)',
		       logrel || '_txid', nsp, logrel);
	-- the schema rows, for the one in force at a log position
	EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I (id) WHERE op = ''s''',
		       logrel || '_schema', nsp, logrel);

	SELECT string_agg(format('%L, NEW.%I', k, k), ', '),
	       string_agg(format('%L, OLD.%I', k, k), ', '),
	       string_agg(format('OLD.%I IS DISTINCT FROM NEW.%I', k, k), ' OR ')
	  INTO newkey, oldkey, keydiff
	  FROM unnest(keys) AS k;

	-- One function per table so the INSERT is planned once, not EXECUTEd per row.
	-- An update that changes the key is logged as a delete and an insert that
	-- names the old key.  A TRUNCATE (statement level) is one row, key JSON null.
	EXECUTE format($f$
		CREATE OR REPLACE FUNCTION %1$I.%2$I() RETURNS trigger
		LANGUAGE plpgsql AS $body$
		DECLARE
			woken text;
		BEGIN
			IF TG_OP = 'TRUNCATE' THEN
				INSERT INTO %1$I.%3$I (op, key) VALUES ('t', 'null');
			ELSIF TG_OP = 'INSERT' THEN
				INSERT INTO %1$I.%3$I (op, key, after)
				VALUES ('c', json_build_object(%4$s), row_to_json(NEW));
			ELSIF TG_OP = 'DELETE' THEN
				INSERT INTO %1$I.%3$I (op, key, before)
				VALUES ('d', json_build_object(%5$s), row_to_json(OLD));
			ELSIF %6$s THEN
				INSERT INTO %1$I.%3$I (op, key, before)
				VALUES ('d', json_build_object(%5$s), row_to_json(OLD));
				INSERT INTO %1$I.%3$I (op, key, after, old_key)
				VALUES ('c', json_build_object(%4$s), row_to_json(NEW), json_build_object(%5$s));
			ELSE
				INSERT INTO %1$I.%3$I (op, key, before, after)
				VALUES ('u', json_build_object(%4$s), row_to_json(OLD), row_to_json(NEW));
			END IF;
			-- a following pg-cdc-tail wakes at once: the server sends one
			-- notification per transaction, however many rows ask; as an
			-- assignment it is a plain expression, where PERFORM would run
			-- a query through the executor, as a statement trigger of its
			-- own did (a fifth of what capture cost a change)
			woken := pg_notify('pgcdc', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME)::text;
			RETURN NULL;
		END
		$body$$f$, nsp, capture, logrel, newkey, oldkey, keydiff);

	EXECUTE format('CREATE OR REPLACE TRIGGER zz_cdc_capture AFTER INSERT OR UPDATE OR DELETE ON %I.%I FOR EACH ROW EXECUTE FUNCTION %I.%I()',
		       nsp, rel, nsp, capture);
	EXECUTE format('CREATE OR REPLACE TRIGGER zz_cdc_truncate AFTER TRUNCATE ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
		       nsp, rel, nsp, capture);
	-- an older cdc.sql notified from a trigger of its own, once per statement
	IF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = t AND tgname = 'zz_cdc_notify') THEN
		EXECUTE format('DROP TRIGGER zz_cdc_notify ON %I.%I', nsp, rel);
	END IF;

	-- enabling again keeps the schema of the first enable, which the oldest
	-- log rows were written with (a schema row tells of each change since)
	INSERT INTO cdc.captured (tbl, log, key_columns, schema)
	VALUES (t, format('%I.%I', nsp, logrel)::regclass, keys, cdc.schema(t))
	ON CONFLICT (tbl) DO UPDATE SET log = excluded.log, key_columns = excluded.key_columns,
		schema = coalesce(cdc.captured.schema, excluded.schema);

	-- a pg-cdc-tail following every table (or a pattern) takes it up at once
	PERFORM pg_notify('pgcdc', 'cdc.enable:' || nsp || '.' || rel);

	RETURN format('%I.%I', nsp, logrel)::regclass;
END
$fn$;

-- Stop capturing t (the log and the consumers' positions are kept).
CREATE OR REPLACE FUNCTION cdc.disable(t regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
	EXECUTE format('DROP TRIGGER IF EXISTS zz_cdc_capture ON %s', t);
	EXECUTE format('DROP TRIGGER IF EXISTS zz_cdc_truncate ON %s', t);
	EXECUTE format('DROP TRIGGER IF EXISTS zz_cdc_notify ON %s', t);
	DELETE FROM cdc.captured WHERE tbl = t;
END
$fn$;

-- Delete the log rows of t that every consumer of t has passed: those of
-- transactions below the oldest consumer's snapshot xmin, except the last
-- schema row among them, which still tells what the rows after it were
-- written with.  Deletes nothing while t has no consumer, or one that has not
-- finished its first batch.  Returns the number of rows deleted.
CREATE OR REPLACE FUNCTION cdc.prune(t regclass) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
	logrel regclass;
	horizon xid8;
	n bigint;
BEGIN
	SELECT log INTO logrel FROM cdc.captured WHERE tbl = t;
	IF logrel IS NULL THEN
		RAISE EXCEPTION 'table % has no capture enabled', t;
	END IF;
	IF EXISTS (SELECT 1 FROM cdc.consumer WHERE tbl = t AND snap_lo IS NULL) THEN
		RETURN 0;
	END IF;
	SELECT min(pg_snapshot_xmin(snap_lo)) INTO horizon FROM cdc.consumer WHERE tbl = t;
	IF horizon IS NULL THEN
		RETURN 0;
	END IF;
	EXECUTE format('DELETE FROM %1$s WHERE txid < $1 AND id IS DISTINCT FROM'
		       ' (SELECT max(id) FROM %1$s WHERE op = ''s'' AND txid < $1)', logrel) USING horizon;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$fn$;

-- The columns of table t in attnum order (name, format_type, not null) and its
-- primary key in index order, as pg-cdc-tail's schema event ("s") has them.
CREATE OR REPLACE FUNCTION cdc.schema(t regclass) RETURNS json
LANGUAGE sql STABLE AS $fn$
	SELECT json_build_object(
		'columns', coalesce(json_agg(json_build_object('name', a.attname,
			'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull)
			ORDER BY a.attnum), '[]'),
		'primary_key', (SELECT coalesce(json_agg(p.attname ORDER BY k.o), '[]')
			FROM pg_index i
			CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, o)
			JOIN pg_attribute p ON p.attrelid = i.indrelid AND p.attnum = k.attnum
			WHERE i.indrelid = t AND i.indisprimary))
	  FROM pg_attribute a
	 WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped
$fn$;

-- At the end of an ALTER TABLE: a schema row (op 's', key JSON null, the
-- schema in after) in the log of each captured table it altered.  It runs as
-- its owner, the superuser who installed it, so that an ALTER TABLE by a
-- user who may not read cdc.captured or write a log still works.
CREATE OR REPLACE FUNCTION cdc.schema_changed() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT DISTINCT cap.tbl, cap.log
	           FROM pg_event_trigger_ddl_commands() d
	           JOIN cdc.captured cap ON cap.tbl::oid = d.objid
	          WHERE d.classid = 'pg_class'::regclass
	LOOP
		EXECUTE format('INSERT INTO %s (op, key, after) VALUES (''s'', ''null'', $1)', r.log)
		USING cdc.schema(r.tbl);
	END LOOP;
END
$fn$;

-- Only a superuser may create an event trigger: without it pg-cdc-tail reads
-- the columns from the catalog when a row's columns differ from those known.
DO $$
BEGIN
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		DROP EVENT TRIGGER IF EXISTS cdc_schema_changed;
		CREATE EVENT TRIGGER cdc_schema_changed ON ddl_command_end
			WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION cdc.schema_changed();
	ELSE
		RAISE NOTICE 'not a superuser: no event trigger logs the ALTER TABLEs of captured tables';
	END IF;
END
$$;

-- Bring the tables captured by an older cdc.sql up to this one (the old_key
-- column, the truncate trigger, the NOTIFY from the capture trigger): enable
-- them again.  A captured table that
-- was dropped since is left alone.
DO $$
DECLARE
	t regclass;
BEGIN
	FOR t IN SELECT tbl FROM cdc.captured
	          WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = tbl) ORDER BY tbl::oid
	LOOP
		PERFORM cdc.enable(t);
	END LOOP;
	-- the notifying trigger function of an older cdc.sql, once no trigger calls it
	IF to_regprocedure('cdc.notify()') IS NOT NULL AND NOT EXISTS
	   (SELECT FROM pg_trigger WHERE tgfoid = to_regprocedure('cdc.notify()')) THEN
		DROP FUNCTION cdc.notify();
	END IF;
END
$$;

-- How far behind each consumer is, one row per row of cdc.consumer: the log
-- rows of its table committed (visible to the query) and not yet delivered
-- to it, the ts of the oldest of them, and how long ago that was.  Schema
-- rows (op 's') are not changes and are not counted.  For a table whose
-- capture was disabled since (no cdc.captured row, no log known) changes,
-- oldest and behind are NULL.
--
-- A row is delivered when its transaction is visible in snap_lo, or, with
-- snap_hi set, visible in snap_hi (and not in snap_lo) and its id is at most
-- last_id: the same test as pg-cdc-tail's batches, by transaction snapshot,
-- never by log id.  So a transaction that took its log ids early and commits
-- after later ones were delivered is counted: its txid was in progress when
-- snap_lo and snap_hi were taken, visible in neither, whatever its ids.  The
-- query reads only the log rows of transactions from snap_lo's xmin on (the
-- txid index): each transaction below it had ended when snap_lo was taken,
-- so its committed rows are visible in snap_lo and delivered; those are what
-- cdc.prune() deletes, so on a pruned log the query reads only what is
-- behind and the few transactions in progress at the last position.
-- The querying transaction's own uncommitted rows are not counted.
-- The changes of table t's log behind a position (snap_lo, snap_hi, last_id,
-- as cdc.consumer has them), and the ts of the oldest; NULL when t has no
-- capture enabled.  pg-cdc-tail asks it of the position it has written out.
CREATE OR REPLACE FUNCTION cdc.lag_of(t regclass, snap_lo pg_snapshot, snap_hi pg_snapshot,
	last_id bigint, OUT changes bigint, OUT oldest timestamptz)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
	logrel regclass;
BEGIN
	SELECT log INTO logrel FROM cdc.captured WHERE tbl = t;
	IF logrel IS NULL THEN
		RETURN;
	END IF;
	EXECUTE format('SELECT count(*), min(ts) FROM %s'
	               ' WHERE txid >= coalesce(pg_snapshot_xmin($1), ''0''::xid8)'
	               '   AND op <> ''s'''
	               '   AND NOT coalesce(pg_visible_in_snapshot(txid, $1), false)'
	               '   AND NOT coalesce(pg_visible_in_snapshot(txid, $2) AND id <= $3, false)'
	               '   AND txid IS DISTINCT FROM pg_current_xact_id_if_assigned()', logrel)
	   INTO changes, oldest USING snap_lo, snap_hi, last_id;
END
$fn$;

-- cdc.lag's rows: cdc.lag_of() of each consumer's stored position.
CREATE OR REPLACE FUNCTION cdc.lag_rows(OUT consumer text, OUT tbl regclass, OUT changes bigint,
	OUT oldest timestamptz, OUT behind interval) RETURNS SETOF record
LANGUAGE sql STABLE AS $fn$
	-- now() is when the querying transaction began: a row committed since
	-- may be younger than that
	SELECT con.name, con.tbl, l.changes, l.oldest,
	       CASE WHEN l.changes IS NOT NULL
	            THEN coalesce(greatest(now() - l.oldest, interval '0'), interval '0') END
	  FROM cdc.consumer con
	 CROSS JOIN LATERAL cdc.lag_of(con.tbl, con.snap_lo, con.snap_hi, con.last_id) l
	 ORDER BY con.name, con.tbl::oid
$fn$;

CREATE OR REPLACE VIEW cdc.lag AS SELECT * FROM cdc.lag_rows();
COMMENT ON VIEW cdc.lag IS 'pgcdc: per consumer and table, the changes committed and not yet delivered (sql/cdc.sql)';
