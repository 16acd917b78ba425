-- pgcdc least-privilege roles: group roles (NOLOGIN) that hold what each job
-- of the toolchain needs, and nothing else.  A site grants them to its own
-- login roles; no tool should run as a superuser or as the tables' owner.
--
-- Run it as a superuser in each database the tools use, the source and the
-- warehouse (one database may be both); it is re-runnable:
--
--   psql -v ON_ERROR_STOP=1 -d shop -f sql/roles.sql
--   psql -v ON_ERROR_STOP=1 -d warehouse -f sql/roles.sql
--   psql -v ON_ERROR_STOP=1 -v warehouse_schema=dw -d warehouse -f sql/roles.sql
--
-- The roles are made once per cluster; the grants are made in the database it
-- runs in, on what is there now: the tables with trigger capture enabled
-- (cdc.captured), the tables of its publications and the tables of the
-- warehouse schema (default analytics).  Each run makes the grants exact:
-- whatever a pgcdc_ role was granted in this database (on a table no longer
-- captured, published or in the warehouse schema, or by hand) is taken back.
-- Run it again after enabling capture on a table, in the same transaction: a
-- pg-cdc-tail following every captured table takes the table up at once, and
-- stops (exit 1) on a change log it may not read:
--
--   psql -1 -v ON_ERROR_STOP=1 -d shop -c "SELECT cdc.enable('public.customers')" -f sql/roles.sql
--
-- and after adding a table to a publication or to the warehouse schema.
--
-- Login roles, and their passwords, are the site's, never this script's:
--
--   CREATE ROLE cdc_reader LOGIN IN ROLE pgcdc_capture_trigger;
--   CREATE ROLE cdc_wal LOGIN REPLICATION IN ROLE pgcdc_capture_logical;
--   CREATE ROLE etl LOGIN IN ROLE pgcdc_apply;
--   \password etl                      (psql asks; the password never is in a file or history)
--
-- or, from a file, \set pw `cat /run/secrets/etl` then ALTER ROLE etl
-- PASSWORD :'pw' in a psql session of its own (\password sends the server
-- only a SCRAM hash; ALTER ROLE sends the password itself, which a server
-- logging every statement writes to its log).  The tools then read it from
-- ~/.pgpass or PGPASSFILE, never from the command line.
--
-- The roles:
--
-- pgcdc_capture_trigger  pg-cdc-tail in trigger mode (the default), any run of
--     it: --follow, --snapshot, --schema-events, --prune, every captured table
--     or a pattern.  USAGE on schema cdc; SELECT on cdc.captured (which tables
--     are captured, and the schema each was enabled with); SELECT, INSERT,
--     UPDATE on cdc.consumer (the consumers' positions); SELECT on cdc.lag
--     (how far behind each consumer is); for each captured
--     table USAGE on its schema, SELECT on the table (--snapshot), SELECT and
--     DELETE on its change log (DELETE only for --prune, through
--     cdc.prune()).  It cannot write to a captured table, nor change what is
--     captured (cdc.captured).  Its consumer positions are shared with every
--     member: a member can move any consumer's position.
--
-- pgcdc_capture_logical  pg-cdc-tail --mode=logical.  SELECT on each table of
--     the database's publications, for --snapshot, and USAGE on their
--     schemas.  The replication protocol needs the REPLICATION attribute, and
--     PostgreSQL never passes a role attribute on through membership: the
--     login role itself must have it (CREATE ROLE ... LOGIN REPLICATION).
--     (Its connection names the database: pg_hba.conf lines of the database
--     apply to it, not those of the keyword "replication".)
--     REPLICATION alone lets it create and drop replication slots
--     (--create-slot, --drop-slot), and read every change of every published
--     table of the database.  The publication is an administrator's job:
--     CREATE PUBLICATION ... FOR TABLE needs ownership of each table (and
--     CREATE on the database), FOR ALL TABLES a superuser, and ALTER
--     PUBLICATION the publication's ownership; so the administrator creates
--     it, publishing insert, update, delete and truncate (the default), and
--     pg-cdc-tail only uses it: with every -t table already in it,
--     --create-slot creates just the slot.
--
-- pgcdc_log_writer  the capture triggers run as whoever writes a captured
--     table (they are not SECURITY DEFINER), so every role that inserts,
--     updates, deletes or truncates a captured table (order-sim, the
--     application) needs INSERT on its change log: this role holds that, and
--     USAGE on the log's schema; the privileges on the table itself are the
--     site's to grant.
--
-- Enabling capture (SELECT cdc.enable(...)) and installing sql/cdc.sql are
-- administrator jobs, no role here holds them: cdc.enable() creates the log
-- table and a trigger function in the table's schema (CREATE on it), triggers
-- on the table (TRIGGER on it; replacing them, its ownership) and writes
-- cdc.captured; the event trigger of cdc.sql that logs each ALTER TABLE of a
-- captured table needs a superuser to install it.  Run both as the tables'
-- owner, or a superuser.
--
-- pgcdc_apply  pg-upsert into the warehouse schema (default analytics),
--     without --create or --evolve.  CONNECT and TEMPORARY on the database
--     (TEMPORARY for the staging table of each batch: without it pg-upsert
--     takes its slower JSON path), USAGE on the schema; SELECT, INSERT, UPDATE,
--     DELETE on each of its tables (the targets, and cdc_tombstones, the
--     guard of hard deletes and truncates); INSERT only on failed_events
--     (--dlq-table=analytics.failed_events).  No TRUNCATE (a truncate event
--     is applied with DELETE or UPDATE), no DDL: schema events change
--     nothing without --create or --evolve, and it cannot drop or alter a
--     table.
--
-- pgcdc_apply_ddl  pg-upsert --create --evolve: pgcdc_apply, and CREATE on the
--     warehouse schema (the tables --create makes, and their schema's
--     cdc_tombstones).  --evolve alters a table, which PostgreSQL lets only
--     its owner (or a member of the owning role) do: give this role the
--     tables pg-upsert may evolve (ALTER TABLE analytics.t OWNER TO
--     pgcdc_apply_ddl), and have its login roles act as it (ALTER ROLE etl
--     SET role = 'pgcdc_apply_ddl'), so that the tables --create makes are
--     owned by the group, not by one login, and every member may evolve
--     them; members of pgcdc_apply get their rows through the default
--     privileges set here.  A missing schema needs CREATE on the database;
--     create it beforehand.  Without this role, run pg-upsert without
--     --create and --evolve, and change the warehouse tables as an
--     administrator.

\if :{?warehouse_schema}
\else
\set warehouse_schema analytics
\endif
SELECT set_config('pgcdc.warehouse_schema', :'warehouse_schema', false) \gset pgcdc_

-- The group roles, once per cluster.  A role of these names made by hand is
-- brought back to a plain NOLOGIN role.
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['pgcdc_capture_trigger', 'pgcdc_capture_logical',
	                         'pgcdc_log_writer', 'pgcdc_apply', 'pgcdc_apply_ddl'] LOOP
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
		EXECUTE format('ALTER ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'
		               ' NOREPLICATION NOBYPASSRLS INHERIT', r);
	END LOOP;
	IF NOT EXISTS (SELECT FROM pg_auth_members WHERE roleid = 'pgcdc_apply'::regrole
	                  AND member = 'pgcdc_apply_ddl'::regrole) THEN
		GRANT pgcdc_apply TO pgcdc_apply_ddl;
	END IF;
END
$$;

COMMENT ON ROLE pgcdc_capture_trigger IS 'pgcdc: pg-cdc-tail in trigger mode (sql/roles.sql)';
COMMENT ON ROLE pgcdc_capture_logical IS 'pgcdc: pg-cdc-tail in logical mode; its login roles need REPLICATION (sql/roles.sql)';
COMMENT ON ROLE pgcdc_log_writer IS 'pgcdc: writers of captured tables, INSERT on their change logs (sql/roles.sql)';
COMMENT ON ROLE pgcdc_apply IS 'pgcdc: pg-upsert into the warehouse schema (sql/roles.sql)';
COMMENT ON ROLE pgcdc_apply_ddl IS 'pgcdc: pg-upsert --create --evolve (sql/roles.sql)';

-- Start from nothing in this database: every privilege the group roles were
-- granted on a table, a schema or the database is taken back, and granted
-- again below on what they need now (an owner's own privileges stay).
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT DISTINCT c.oid::regclass AS tbl, g.rolname
	           FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
	           JOIN pg_roles g ON g.oid = a.grantee
	          WHERE g.rolname LIKE 'pgcdc\_%' AND a.grantee <> c.relowner
	            AND c.relkind IN ('r', 'p', 'v', 'm', 'f') LOOP
		EXECUTE format('REVOKE ALL ON TABLE %s FROM %I', r.tbl, r.rolname);
	END LOOP;
	FOR r IN SELECT DISTINCT n.nspname, g.rolname
	           FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
	           JOIN pg_roles g ON g.oid = a.grantee
	          WHERE g.rolname LIKE 'pgcdc\_%' AND a.grantee <> n.nspowner LOOP
		EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', r.nspname, r.rolname);
	END LOOP;
	EXECUTE format('REVOKE ALL ON DATABASE %I FROM pgcdc_capture_trigger, pgcdc_capture_logical,'
	               ' pgcdc_log_writer, pgcdc_apply, pgcdc_apply_ddl', current_database());
END
$$;

-- Source, trigger mode: the capture machinery of sql/cdc.sql, when it is here.
DO $$
DECLARE
	r record;
BEGIN
	IF to_regclass('cdc.captured') IS NULL OR to_regclass('cdc.consumer') IS NULL THEN
		RAISE NOTICE 'no sql/cdc.sql in database "%": no grants for trigger capture', current_database();
		RETURN;
	END IF;
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgcdc_capture_trigger, pgcdc_log_writer',
	               current_database());
	GRANT USAGE ON SCHEMA cdc TO pgcdc_capture_trigger;
	GRANT SELECT ON cdc.captured TO pgcdc_capture_trigger;
	GRANT SELECT, INSERT, UPDATE ON cdc.consumer TO pgcdc_capture_trigger;
	-- how far behind each consumer is (pg-cdc-tail's reports, cdc-status)
	IF to_regclass('cdc.lag') IS NOT NULL THEN
		GRANT SELECT ON cdc.lag TO pgcdc_capture_trigger;
	END IF;
	FOR r IN SELECT cap.tbl, cap.log, tn.nspname AS tbl_nsp, ln.nspname AS log_nsp
	           FROM cdc.captured cap
	           JOIN pg_class t ON t.oid = cap.tbl JOIN pg_namespace tn ON tn.oid = t.relnamespace
	           JOIN pg_class l ON l.oid = cap.log JOIN pg_namespace ln ON ln.oid = l.relnamespace LOOP
		EXECUTE format('GRANT USAGE ON SCHEMA %I, %I TO pgcdc_capture_trigger', r.tbl_nsp, r.log_nsp);
		EXECUTE format('GRANT SELECT ON TABLE %s TO pgcdc_capture_trigger', r.tbl);
		EXECUTE format('GRANT SELECT, DELETE ON TABLE %s TO pgcdc_capture_trigger', r.log);
		EXECUTE format('GRANT USAGE ON SCHEMA %I TO pgcdc_log_writer', r.log_nsp);
		EXECUTE format('GRANT INSERT ON TABLE %s TO pgcdc_log_writer', r.log);
	END LOOP;
END
$$;

-- Source, logical mode: the tables of this database's publications.
DO $$
DECLARE
	r record;
BEGIN
	IF NOT EXISTS (SELECT FROM pg_publication) THEN
		RAISE NOTICE 'no publication in database "%": no grants for logical capture', current_database();
		RETURN;
	END IF;
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgcdc_capture_logical', current_database());
	FOR r IN SELECT DISTINCT schemaname, tablename FROM pg_publication_tables LOOP
		EXECUTE format('GRANT USAGE ON SCHEMA %I TO pgcdc_capture_logical', r.schemaname);
		EXECUTE format('GRANT SELECT ON TABLE %I.%I TO pgcdc_capture_logical', r.schemaname, r.tablename);
	END LOOP;
END
$$;

-- Warehouse: the tables of the warehouse schema, when it is here.
DO $$
DECLARE
	nsp text := current_setting('pgcdc.warehouse_schema');
	r record;
BEGIN
	IF to_regnamespace(quote_ident(nsp)) IS NULL THEN
		RAISE NOTICE 'no schema "%" in database "%": no grants for pg-upsert', nsp, current_database();
		RETURN;
	END IF;
	EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO pgcdc_apply', current_database());
	EXECUTE format('GRANT USAGE ON SCHEMA %I TO pgcdc_apply', nsp);
	EXECUTE format('GRANT CREATE ON SCHEMA %I TO pgcdc_apply_ddl', nsp);
	FOR r IN SELECT c.oid::regclass AS tbl, c.relname
	           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	          WHERE n.nspname = nsp AND c.relkind IN ('r', 'p') AND NOT c.relispartition LOOP
		IF r.relname = 'failed_events' THEN
			-- dead letters are written, never read back nor changed
			EXECUTE format('GRANT INSERT ON TABLE %s TO pgcdc_apply', r.tbl);
		ELSE
			EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO pgcdc_apply', r.tbl);
		END IF;
	END LOOP;
	-- the tables pg-upsert --create makes, as pgcdc_apply_ddl, are everyone's to apply to
	EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE pgcdc_apply_ddl IN SCHEMA %I'
	               ' GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pgcdc_apply', nsp);
END
$$;
