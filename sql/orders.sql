-- The source orders table, with capture enabled.  Needs cdc.sql first.
-- Re-runnable: psql -v ON_ERROR_STOP=1 -f cdc.sql -f orders.sql

CREATE TABLE IF NOT EXISTS public.orders (
	id           uuid        PRIMARY KEY,
	user_id      uuid        NOT NULL,
	status       text        NOT NULL,
	amount_cents bigint      NOT NULL,
	currency     text        NOT NULL,
	country      text        NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	version      bigint      NOT NULL DEFAULT 1
);

-- The original bumped version in an AFTER trigger, where assigning NEW has no
-- effect: every update logged the same version.  It belongs in a BEFORE trigger.
CREATE OR REPLACE FUNCTION public.orders_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.version := OLD.version + 1;
	NEW.updated_at := now();
	RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER orders_bump_version BEFORE UPDATE ON public.orders
	FOR EACH ROW EXECUTE FUNCTION public.orders_bump_version();

SELECT cdc.enable('public.orders');
