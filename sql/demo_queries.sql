-- The original's questions of the warehouse, asked of any table with the
-- orders' columns: psql -v tbl=public.orders -f demo_queries.sql asks the
-- source the same (default: analytics.fct_orders).
\if :{?tbl}
\else
\set tbl analytics.fct_orders
\endif

SELECT count(*) AS orders FROM :tbl;

-- per status: orders and their total, largest total first
SELECT status, count(*) AS orders, sum(amount_cents) / 100.0 AS total
  FROM :tbl GROUP BY status ORDER BY total DESC, status;

-- the same per country
SELECT country, count(*) AS orders, sum(amount_cents) / 100.0 AS total
  FROM :tbl GROUP BY country ORDER BY total DESC, country;
