-- The warehouse, as the original's users query it: analytics.fct_orders with
-- the original's columns (order_id, where the source says id: cdc-sink maps
-- public.orders=analytics.fct_orders(id=order_id)), plus the guard column.
-- Re-runnable: psql -v ON_ERROR_STOP=1 -f warehouse.sql

CREATE SCHEMA IF NOT EXISTS analytics;

-- Latest state of every live order: a deleted order is deleted here too, so
-- that count(*) and every sum answer as the source does.  cdc_pos is the
-- guard column: a change applies only when its pos is higher than the row's.
CREATE TABLE IF NOT EXISTS analytics.fct_orders (
	order_id     uuid        PRIMARY KEY,
	user_id      uuid,
	status       text,
	amount_cents bigint,
	currency     text,
	country      text,
	created_at   timestamptz,
	updated_at   timestamptz,
	last_cdc_ts  timestamptz,
	version      bigint,
	extra        jsonb,
	cdc_pos      numeric(20, 0) NOT NULL
);

-- The guard of what is deleted: pg-upsert keeps the pos of each deleted key
-- (and of each truncate, key null) here, so that a change older than a
-- delete, replayed or late, never brings the row back.
CREATE TABLE IF NOT EXISTS analytics.cdc_tombstones (
	tbl        text           NOT NULL,
	key        jsonb          NOT NULL,
	pos        numeric(20, 0) NOT NULL,
	deleted_at timestamptz,
	PRIMARY KEY (tbl, key)
);

-- Dead letters: the original bytes of every rejected record and why.
CREATE TABLE IF NOT EXISTS analytics.failed_events (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	raw_value     bytea       NOT NULL,
	error_message text        NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now()
);
