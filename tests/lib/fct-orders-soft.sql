-- The warehouse the tool suites apply the orders stream to: analytics.fct_orders
-- keyed by the source's own column name (id), with soft deletes (is_deleted),
-- so that pg-upsert -t applies the orders stream with no map.  sql/warehouse.sql
-- is the original's warehouse (order_id, hard deletes with tombstones).

CREATE SCHEMA IF NOT EXISTS analytics;

-- Latest state of every order.  cdc_pos is the guard column: a change applies
-- only when its pos is higher than the row's.
CREATE TABLE IF NOT EXISTS analytics.fct_orders (
	id           uuid        PRIMARY KEY,
	user_id      uuid,
	status       text,
	amount_cents bigint,
	currency     text,
	country      text,
	created_at   timestamptz,
	updated_at   timestamptz,
	version      bigint,
	cdc_pos      numeric(20, 0) NOT NULL,
	is_deleted   boolean     NOT NULL DEFAULT false,
	last_cdc_ts  timestamptz,
	extra        jsonb
);

-- Dead letters: the original bytes of every rejected record and why.
CREATE TABLE IF NOT EXISTS analytics.failed_events (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	raw_value     bytea       NOT NULL,
	error_message text        NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now()
);
