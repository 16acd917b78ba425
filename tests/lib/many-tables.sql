-- Twenty source tables with four kinds of primary key, and work(n), one
-- random change of table n, for concurrent writers (pgbench) to call.
--   u01..u05  uuid          b06..b10  bigint
--   c11..c15  (int, text)   s16..s20  text
-- Every table has a column "spare" that work() never writes, so that a test
-- may drop it while writers run.  Keys come from a domain of 200 per table,
-- so changes hit rows that exist: inserts, updates and deletes mix.

CREATE TABLE IF NOT EXISTS public.work_tables (
	i       int  PRIMARY KEY,
	tbl     text NOT NULL,
	keycols text NOT NULL,
	keyexpr text NOT NULL	-- the key from $4, an int in 0..199
);

DO $$
DECLARE
	i    int;
	name text;
	cols text;
	expr text;
	def  text;
BEGIN
	FOR i IN 1..20 LOOP
		IF i <= 5 THEN
			name := format('u%s', lpad(i::text, 2, '0'));
			cols := 'id';
			expr := 'md5(''k'' || $4)::uuid';
			def := 'id uuid PRIMARY KEY';
		ELSIF i <= 10 THEN
			name := format('b%s', lpad(i::text, 2, '0'));
			cols := 'id';
			expr := '$4::bigint * 1000000007';
			def := 'id bigint PRIMARY KEY';
		ELSIF i <= 15 THEN
			name := format('c%s', i);
			cols := 'a, b';
			expr := '$4 % 20, ''b'' || ($4 / 20)';
			def := 'a int, b text';
		ELSE
			name := format('s%s', i);
			cols := 'code';
			expr := '''code-'' || $4';
			def := 'code text PRIMARY KEY';
		END IF;
		EXECUTE format('CREATE TABLE IF NOT EXISTS public.%I (%s, v int NOT NULL,'
			' note text, amount numeric(12, 2), at timestamptz, spare text%s)',
			name, def, CASE WHEN i BETWEEN 11 AND 15 THEN ', PRIMARY KEY (a, b)' ELSE '' END);
		INSERT INTO public.work_tables VALUES (i, name, cols, expr) ON CONFLICT DO NOTHING;
	END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.work(n int) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
	w public.work_tables;
	k int := floor(random() * 200)::int;
	r float8 := random();
BEGIN
	SELECT * INTO w FROM public.work_tables WHERE i = n;
	IF r < 0.6 THEN
		EXECUTE format('INSERT INTO public.%I AS t (%s, v, note, amount, at)'
			' VALUES (%s, $1, $2, $3, clock_timestamp()) ON CONFLICT (%s) DO UPDATE'
			' SET v = t.v + 1, note = excluded.note, amount = excluded.amount, at = excluded.at',
			w.tbl, w.keycols, w.keyexpr, w.keycols)
			USING floor(random() * 1000)::int, md5(random()::text), round((random() * 10000)::numeric, 2), k;
	ELSIF r < 0.85 THEN
		EXECUTE format('UPDATE public.%I SET v = v + 1, note = $1 WHERE (%s) = (%s)',
			w.tbl, w.keycols, replace(w.keyexpr, '$4', '$2'))
			USING md5(random()::text), k;
	ELSE
		EXECUTE format('DELETE FROM public.%I WHERE (%s) = (%s)',
			w.tbl, w.keycols, replace(w.keyexpr, '$4', '$1'))
			USING k;
	END IF;
END
$fn$;

-- Every row gets a spare value, written before the test drops the column.
CREATE OR REPLACE FUNCTION public.fill_spare() RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
	w public.work_tables;
BEGIN
	FOR w IN SELECT * FROM public.work_tables LOOP
		EXECUTE format('UPDATE public.%I SET spare = md5(v::text)', w.tbl);
	END LOOP;
END
$fn$;
