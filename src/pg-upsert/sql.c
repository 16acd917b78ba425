/*
 * The statements that apply a batch, built once from the target's catalog.
 * Every name in them was quoted by libpq (struct shape); nothing from the
 * input is ever pasted in: events travel as parameters.
 *
 * The client sends each event's row (after; for a delete its old row, or
 * only its key, op "k") as one element of a binary text[], and pos, op and
 * ts_ms as arrays beside it: the server parses each row's JSON once.
 */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "upsert.h"

/*
 * Where a row of the table is a relation of its own, its alias is a name no
 * column is expected to have: a bare alias that a column shares (a table
 * with a column "r") would name the column, not the row.
 */
#define ROW_ALIAS "\"pgcdc row\""
#define MERGED_ALIAS "\"pgcdc merged\""

/*
 * A staged event's ts_ms (bigint) t as a timestamp: in floating point where
 * it is exact (|t| < 2^53), which rounds to the same double as the JSON
 * path's numeric division at a tenth of its cost, else as that path does.
 */
#define STAGED_TS(t) "coalesce(CASE WHEN " t " BETWEEN -9007199254740991 AND 9007199254740991" \
	" THEN to_timestamp(" t "::float8 / 1000) ELSE to_timestamp(" t "::numeric / 1000) END, clock_timestamp())"

/* The key columns as "<before>k1<after>, <before>k2<after>". */
static void
put_keys(FILE *f, const struct shape *s, const char *before, const char *after)
{
	int i;

	for (i = 0; i < s->nkeys; i++)
		fprintf(f, "%s%s%s%s", i ? ", " : "", before, s->qk[i], after);
}

/* "<a>k1 = <b>k1 AND <a>k2 = <b>k2": the same key in two rows. */
static void
put_match(FILE *f, const struct shape *s, const char *a, const char *b)
{
	int i;

	for (i = 0; i < s->nkeys; i++)
		fprintf(f, "%s%s%s = %s%s", i ? " AND " : "", a, s->qk[i], b, s->qk[i]);
}

/*
 * Hard deletes keep their guard in SCHEMA.cdc_tombstones, when there is one:
 * a row per deleted key, keyed by the table's schema.table and a jsonb object
 * of the key's typed values, and one with the key JSON null for the table's
 * latest truncate.  A key has a live row or a tombstone, never both.
 */

/* The tombstone key of the record rec: jsonb_build_object('k1', rec.k1, ...). */
static void
put_tomb_key(FILE *f, const struct shape *s, const char *rec)
{
	int i;

	fputs("jsonb_build_object(", f);
	for (i = 0; i < s->nkeys; i++)
		fprintf(f, "%s%s, %s%s", i ? ", " : "", s->lk[i], rec, s->qk[i]);
	fputs(")", f);
}

/* "No tombstone of the key of rec, nor of the table, is at or above pos p": p may apply. */
static void
put_tomb_clear(FILE *f, const struct shape *s, const char *rec, const char *p)
{
	fprintf(f, "NOT EXISTS (SELECT FROM %s AS tb WHERE tb.tbl = %s AND tb.key IN (", s->tombs, s->tbl);
	put_tomb_key(f, s, rec);
	fprintf(f, ", 'null') AND tb.pos >= %s)", p);
}

/*
 * The tombstones the batch is guarded by, each read once: tt, the table's
 * (a truncate's; one row or none), and kt, those of the keys the batch
 * writes, with the key's record r.
 */
static void
put_tomb_reads(FILE *f, const struct shape *s)
{
	fprintf(f, ", tt AS (SELECT tb.pos FROM %s AS tb WHERE tb.tbl = %s AND tb.key = 'null')", s->tombs, s->tbl);
	fprintf(f, ", kt AS (SELECT typed.r, tb.key AS tkey, tb.pos AS tpos FROM typed JOIN %s AS tb"
	    " ON tb.tbl = %s AND tb.key = ", s->tombs, s->tbl);
	put_tomb_key(f, s, "(typed.r).");
	fputs(" WHERE NOT typed.d)", f);
}

/* A write of typed applies only above its key's tombstone and the table's. */
static void
put_tomb_guard(FILE *f, const struct shape *s)
{
	fputs(" AND NOT EXISTS (SELECT FROM tt WHERE tt.pos >= typed.p) AND NOT EXISTS (SELECT FROM kt WHERE ", f);
	put_match(f, s, "(kt.r).", "(typed.r).");
	fputs(" AND kt.tpos >= typed.p)", f);
}

/* Record or raise a tombstone: never lowered, as a guard column is not. */
static void
put_tomb_upsert(FILE *f)
{
	fputs(" ON CONFLICT (tbl, key) DO UPDATE SET pos = excluded.pos, deleted_at = excluded.deleted_at"
	    " WHERE tb.pos < excluded.pos", f);
}

/*
 * The tombstones of the batch's deletes: each at the delete's pos, unless
 * the table's tombstone is already as high (a truncate after it covers the
 * key) or the table holds a change of the key as new (which the delete
 * leaves, and whose guard covers the key).  Either way the tombstones end
 * the same whatever the order the events came in.
 */
static void
put_tomb_deletes(FILE *f, const struct shape *s)
{
	fprintf(f, ", tombed AS (INSERT INTO %s AS tb (tbl, key, pos, deleted_at) SELECT %s, ", s->tombs, s->tbl);
	put_tomb_key(f, s, "(typed.r).");
	fputs(", typed.p, typed.ts FROM typed WHERE typed.d AND NOT EXISTS (SELECT FROM tt WHERE tt.pos >= typed.p)", f);
	fprintf(f, " AND NOT EXISTS (SELECT FROM %s AS w WHERE ", s->table);
	put_match(f, s, "w.", "(typed.r).");
	fprintf(f, " AND w.%s >= typed.p)", s->cols[s->pos].name);
	put_tomb_upsert(f);
	fputs(")", f);
}

/*
 * A write that was applied removes its key's tombstone, which is older:
 * ins returns the rows written, kt the keys that had one.  As a CTE when a
 * statement follows.
 */
static void
put_tomb_writes(FILE *f, const struct shape *s, int cte)
{
	fprintf(f, "%s DELETE FROM %s AS tb USING kt, ins WHERE ", cte ? ", untombed AS (" : "", s->tombs);
	put_match(f, s, "ins.", "(kt.r).");
	fprintf(f, " AND tb.tbl = %s AND tb.key = kt.tkey AND tb.pos < ins.%s%s", s->tbl,
	    s->cols[s->pos].name, cte ? ")" : "");
}

/*
 * ev from the staging table, which the client filled by COPY with each
 * event's row already typed: r is the staged row, whose columns are the
 * table's (and the event's own, named apart).
 */
static void
put_staged_events(FILE *f, const struct shape *s)
{
	/* the alias is no column's name: a bare one would name the column, not the row */
	fputs("WITH ev AS (SELECT \"pgcdc st\".\"pgcdc p\" AS p, \"pgcdc st\".\"pgcdc o\" IN ('d', 'k') AS d,"
	    " \"pgcdc st\".\"pgcdc o\" = 'k' AS k,"
	    " " STAGED_TS("\"pgcdc st\".\"pgcdc t\"") " AS ts,"
	    " NULL::json AS row, false AS x, \"pgcdc st\" AS r FROM ", f);
	fprintf(f, "%s AS \"pgcdc st\"),", s->stage);
}

/* ev: one row per event; with "unchanged" (and "old_key"), numbered. */
static void
put_events(FILE *f, enum statement kind)
{
	fputs(kind == ST_MOVE ? "WITH RECURSIVE ev AS (SELECT u.n, " : "WITH ev AS (SELECT ", f);
	fputs("u.p::numeric AS p, u.o IN ('d', 'k') AS d, u.o = 'k' AS k,"
	    " coalesce(to_timestamp(u.t::numeric / 1000), clock_timestamp()) AS ts, u.row::json AS row, u.x::bool AS x", f);
	if (kind == ST_APPLY) {
		fputs(" FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(row, p, o, t, x)),", f);
		return;
	}
	fputs(", nullif($6::jsonb -> (u.n - 1)::int, 'null') AS un", f);
	if (kind == ST_MOVE)
		fputs(", nullif($7::jsonb -> (u.n - 1)::int, 'null') AS ok", f);
	fputs(" FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
	    " WITH ORDINALITY AS u(row, p, o, t, x, n)),", f);
}

/*
 * The fold: of each key's events in the batch, the latest is applied, with
 * the highest pos.  When it is a delete with only its key, the row it
 * deletes is the key's latest earlier change in the batch, when there is
 * one: sorted by (key, k, p DESC), the first of the key is that change, or
 * else the delete itself.  lk says the latest is such a delete.
 */
#define LATEST_IS_K(e) "coalesce(max(" e "p) FILTER (WHERE " e "k) OVER pk = max(" e "p) OVER pk, false)"

static void
put_fold_order(FILE *f, const struct shape *s, const char *r, const char *e)
{
	fputs(" WINDOW pk AS (PARTITION BY ", f);
	put_keys(f, s, r, "");
	fputs(") ORDER BY ", f);
	put_keys(f, s, r, "");
	fprintf(f, ", %sk, %sp DESC", e, e);
}

/* typed: the row to apply for each key, as a record of the table (staged: the staged row). */
static void
put_typed_plain(FILE *f, const struct shape *s, int staged)
{
	const char *r = staged ? "(ev.r)." : ROW_ALIAS ".";

	fputs(" typed AS (SELECT DISTINCT ON (", f);
	put_keys(f, s, r, "");
	fputs(") max(ev.p) OVER pk AS p, ev.d OR " LATEST_IS_K("ev.") " AS d, ev.k,"
	    " CASE WHEN " LATEST_IS_K("ev.") " THEN max(ev.ts) FILTER (WHERE ev.k) OVER pk ELSE ev.ts END AS ts,", f);
	if (staged)
		fputs(" ev.row, ev.x, ev.r AS r FROM ev", f);
	else
		fprintf(f, " ev.row, ev.x, " ROW_ALIAS " AS r FROM ev, json_populate_record(NULL::%s, ev.row) AS " ROW_ALIAS,
		    s->table);
	put_fold_order(f, s, r, "ev.");
	fputs(")", f);
}

/* latest: the same fold of allr, where, with mp its pos and lk, kts the latest delete's */
static void
put_latest(FILE *f, const struct shape *s, const char *where)
{
	fputs(" latest AS (SELECT DISTINCT ON (", f);
	put_keys(f, s, "(r).", "");
	fputs(") allr.*, max(p) OVER pk AS mp, " LATEST_IS_K("") " AS lk,"
	    " max(ts) FILTER (WHERE k) OVER pk AS kts FROM allr", f);
	fputs(where, f);
	put_fold_order(f, s, "(r).", "");
	fputs("),", f);
}

/* The members of typed that come from latest l. */
static void
put_latest_cols(FILE *f)
{
	fputs(" typed AS (SELECT l.mp AS p, l.d OR l.lk AS d, l.k, CASE WHEN l.lk THEN l.kts ELSE l.ts END AS ts,", f);
}

/*
 * The same where rows name "unchanged" columns (TOASTed values logical
 * capture could not send): they take those columns from the batch's latest
 * earlier change of the key that has them, else from the table as it is.
 */
static void
put_typed_merge(FILE *f, const struct shape *s)
{
	fprintf(f, " allr AS (SELECT ev.*, " ROW_ALIAS " AS r FROM ev, json_populate_record(NULL::%s, ev.row) AS "
	    ROW_ALIAS "),", s->table);
	put_latest(f, s, "");
	put_latest_cols(f);
	fputs(" m.row, l.x, " MERGED_ALIAS " AS r FROM latest l, LATERAL (SELECT CASE"
	    " WHEN l.un IS NULL THEN l.row ELSE (coalesce((SELECT to_jsonb(w) FROM ", f);
	fprintf(f, "%s AS w WHERE ", s->table);
	put_match(f, s, "w.", "(l.r).");
	fputs("), '{}') || coalesce((SELECT jsonb_object_agg(kv.key, kv.value ORDER BY a.p)"
	    " FROM allr AS a, jsonb_each(a.row::jsonb) AS kv WHERE ", f);
	put_match(f, s, "(a.r).", "(l.r).");
	fputs(" AND a.p < l.p AND NOT a.d AND NOT coalesce(a.un ? kv.key, false)), '{}')"
	    " || l.row::jsonb)::json END AS row) AS m,", f);
	fprintf(f, " json_populate_record(NULL::%s, m.row) AS " MERGED_ALIAS ")", s->table);
}

/*
 * With key changes ("old_key") in the batch, a row's history runs back
 * through them: seg lists, for each event naming unchanged columns, the keys
 * its values come from, newest first.  Depth 0 is its own key before it, or
 * for a key change the old key up to the change; each deeper one is the key
 * that the latest key change into the one above came from, up to that
 * change.  Positions fall strictly from one to the next, so it ends.
 */
static void
put_lineage(FILE *f, const struct shape *s)
{
	fprintf(f, " allr AS (SELECT ev.*, " ROW_ALIAS " AS r, json_populate_record(NULL::%s, ev.ok::json) AS okr"
	    " FROM ev, json_populate_record(NULL::%s, ev.row) AS " ROW_ALIAS "),", s->table, s->table);
	fputs(" seg AS (SELECT a.n, 0 AS depth, CASE WHEN a.ok IS NULL THEN a.r ELSE a.okr END AS kr,"
	    " a.p AS hi, a.ok IS NOT NULL AS moved FROM allr AS a WHERE a.un IS NOT NULL"
	    " UNION ALL SELECT s.n, s.depth + 1, b.okr, b.p, true FROM seg AS s, LATERAL (SELECT a.okr, a.p"
	    " FROM allr AS a WHERE a.ok IS NOT NULL AND ", f);
	put_match(f, s, "(a.r).", "(s.kr).");
	fputs(" AND a.p < s.hi ORDER BY a.p DESC LIMIT 1) AS b),", f);
	/* a key's events from its birth by a key change (lo) up to the change below it (hi) */
	fputs(" bounds AS (SELECT s.*, lead(s.hi) OVER (PARTITION BY s.n ORDER BY s.depth) AS lo,"
	    " s.depth = max(s.depth) OVER (PARTITION BY s.n) AS last FROM seg AS s),", f);
}

/*
 * mv: the row of each event naming unchanged columns, merged from its
 * history: the table's row of the oldest key, then each key's events, oldest
 * first; miss: those whose history went through a key change and still
 * lacks a column they name, unless the table already holds a newer change.
 */
static void
put_merged(FILE *f, const struct shape *s)
{
	int i;

	fputs(" mv AS (SELECT e.n, e.un, (coalesce((SELECT to_jsonb(w) FROM bounds AS s, ", f);
	fprintf(f, "%s AS w WHERE s.n = e.n AND s.last AND ", s->table);
	put_match(f, s, "w.", "(s.kr).");
	fputs("), '{}') || coalesce((SELECT jsonb_object_agg(kv.key, kv.value ORDER BY s.depth DESC, a.p)"
	    " FROM bounds AS s, allr AS a, jsonb_each(a.row::jsonb) AS kv WHERE s.n = e.n AND ", f);
	put_match(f, s, "(a.r).", "(s.kr).");
	fputs(" AND (a.p < s.hi OR (s.moved AND a.p = s.hi)) AND (s.lo IS NULL OR a.p >= s.lo)"
	    " AND NOT coalesce(a.un ? kv.key, false)), '{}') || e.row::jsonb) AS row,"
	    " e.ok IS NOT NULL OR EXISTS (SELECT FROM bounds AS s WHERE s.n = e.n AND s.depth > 0) AS moved"
	    " FROM allr AS e WHERE e.un IS NOT NULL),", f);
	fputs(" miss AS (SELECT DISTINCT ON (m.n) m.n, c.name FROM mv AS m JOIN allr AS e ON e.n = m.n,"
	    " jsonb_array_elements_text(m.un) WITH ORDINALITY AS c(name, i) WHERE m.moved AND c.name IN (", f);
	for (i = 0; i < s->ncols; i++)
		fprintf(f, "%s%s", i ? ", " : "", s->cols[i].lit);
	fputs(") AND NOT m.row ? c.name AND NOT EXISTS (SELECT FROM ", f);
	fprintf(f, "%s AS w WHERE ", s->table);
	put_match(f, s, "w.", "(e.r).");
	fprintf(f, " AND w.%s >= e.p)", s->cols[s->pos].name);
	if (s->tombs) {
		/* nor a tombstone as new: the event would change nothing */
		fputs(" AND ", f);
		put_tomb_clear(f, s, "(e.r).", "e.p");
	}
	fputs(" ORDER BY m.n, c.i),", f);
	put_latest(f, s, " WHERE n NOT IN (SELECT n FROM miss)");
	put_latest_cols(f);
	fputs(" coalesce(m.row::json, l.row) AS row, l.x,", f);
	fprintf(f, " json_populate_record(NULL::%s, coalesce(m.row::json, l.row)) AS r"
	    " FROM latest AS l LEFT JOIN mv AS m ON m.n = l.n)", s->table);
}

/* Deletes: hard ones remove the row; soft ones with only a key mark it and keep its values. */
static void
put_deletes(FILE *f, const struct shape *s)
{
	const char *pos = s->cols[s->pos].name;
	const char *ts = s->ts >= 0 ? s->cols[s->ts].name : NULL;

	if (s->del == DELETE_HARD) {
		if (s->tombs)
			put_tomb_reads(f, s);
		fprintf(f, ", gone AS (DELETE FROM %s AS t USING typed WHERE typed.d AND ", s->table);
		put_match(f, s, "t.", "(typed.r).");
		fprintf(f, " AND t.%s < typed.p)", pos);
		if (s->tombs)
			put_tomb_deletes(f, s);
		return;
	}
	fprintf(f, ", tomb AS (INSERT INTO %s AS t (", s->table);
	put_keys(f, s, "", "");
	fprintf(f, ", %s, %s", pos, s->cols[s->deleted].name);
	if (ts)
		fprintf(f, ", %s", ts);
	fputs(") SELECT ", f);
	put_keys(f, s, "(r).", "");
	fprintf(f, ", p, true%s FROM typed WHERE k ON CONFLICT (", ts ? ", ts" : "");
	put_keys(f, s, "", "");
	fprintf(f, ") DO UPDATE SET %s = excluded.%s, %s = true", pos, pos, s->cols[s->deleted].name);
	if (ts)
		fprintf(f, ", %s = excluded.%s", ts, ts);
	fprintf(f, " WHERE t.%s IS NULL OR t.%s < excluded.%s)", pos, pos, pos);
}

/*
 * The conflict clause of an upsert: every column from the new row where it
 * is newer by pos (or the row has none); with tombstones, the keys and pos
 * of the rows written.
 */
static void
put_on_conflict(FILE *f, const struct shape *s)
{
	const char *pos = s->cols[s->pos].name;
	int i;

	fputs(" ON CONFLICT (", f);
	put_keys(f, s, "", "");
	fputs(") DO UPDATE SET ", f);
	for (i = 0; i < s->ncols; i++)
		fprintf(f, "%s%s = excluded.%s", i ? ", " : "", s->cols[i].name, s->cols[i].name);
	fprintf(f, " WHERE t.%s IS NULL OR t.%s < excluded.%s", pos, pos, pos);
	if (s->tombs) {
		fputs(" RETURNING ", f);
		put_keys(f, s, "t.", "");
		fprintf(f, ", t.%s", pos);
	}
}

/* The upsert itself, guarded by the pos column. */
static void
put_insert(FILE *f, const struct shape *s)
{
	int i, k;

	fprintf(f, " INSERT INTO %s AS t (", s->table);
	for (i = 0; i < s->ncols; i++)
		fprintf(f, "%s%s", i ? ", " : "", s->cols[i].name);
	fputs(") SELECT ", f);
	for (i = 0; i < s->ncols; i++) {
		if (i)
			fputs(", ", f);
		if (i == s->pos)
			fputs("p", f);
		else if (i == s->deleted)
			fputs("d", f);
		else if (i == s->ts)
			fputs("ts", f);
		else if (i == s->extra) {
			fputs("CASE WHEN x THEN nullif(row::jsonb - ARRAY[", f);
			for (k = 0; k < s->ncols; k++)
				fprintf(f, "%s%s", k ? ", " : "", s->cols[k].lit);
			fputs("]::text[], '{}') END", f);
		} else
			fprintf(f, "(r).%s", s->cols[i].name);
	}
	fprintf(f, " FROM typed WHERE NOT %s", s->del == DELETE_HARD ? "d" : "k");
	if (s->tombs)
		put_tomb_guard(f, s);
	/* a change, or a delete with its old row: the row as the event has it */
	put_on_conflict(f, s);
}

/*
 * A staged batch without deletes, on the staged columns themselves (a
 * record per row, taken apart column by column, cost as much again): each
 * key's latest change, guarded by the pos column and the tombstones, which
 * a write that applies removes.  The same rows as ST_STAGED writes.
 */
static void
put_flat_upserts(FILE *f, const struct shape *s)
{
	const char *pos = s->cols[s->pos].name;
	int i;

	fputs("WITH typed AS (SELECT DISTINCT ON (", f);
	put_keys(f, s, "st.", "");
	fputs(") st.* FROM ", f);
	fprintf(f, "%s AS st ORDER BY ", s->stage);
	put_keys(f, s, "st.", "");
	fputs(", st.\"pgcdc p\" DESC)", f);
	if (s->tombs) {
		fprintf(f, ", tt AS (SELECT tb.pos FROM %s AS tb WHERE tb.tbl = %s AND tb.key = 'null')", s->tombs, s->tbl);
		fputs(", kt AS (SELECT ", f);
		put_keys(f, s, "typed.", "");
		fprintf(f, ", tb.key AS \"pgcdc tkey\", tb.pos AS \"pgcdc tpos\" FROM typed JOIN %s AS tb"
		    " ON tb.tbl = %s AND tb.key = ", s->tombs, s->tbl);
		put_tomb_key(f, s, "typed.");
		fputs("), ins AS (", f);
	}
	fprintf(f, " INSERT INTO %s AS t (", s->table);
	for (i = 0; i < s->ncols; i++)
		fprintf(f, "%s%s", i ? ", " : "", s->cols[i].name);
	fputs(") SELECT ", f);
	for (i = 0; i < s->ncols; i++) {
		fputs(i ? ", " : "", f);
		if (i == s->pos)
			fputs("typed.\"pgcdc p\"", f);
		else if (i == s->deleted)
			fputs("false", f);
		else if (i == s->ts)
			fputs(STAGED_TS("typed.\"pgcdc t\""), f);
		else if (i == s->extra)
			fputs("NULL", f);	/* rows with members for extra take the JSON path */
		else
			fprintf(f, "typed.%s", s->cols[i].name);
	}
	fputs(" FROM typed", f);
	if (s->tombs) {
		fputs(" WHERE NOT EXISTS (SELECT FROM tt WHERE tt.pos >= typed.\"pgcdc p\")"
		    " AND NOT EXISTS (SELECT FROM kt WHERE ", f);
		put_match(f, s, "kt.", "typed.");
		fputs(" AND kt.\"pgcdc tpos\" >= typed.\"pgcdc p\")", f);
	}
	put_on_conflict(f, s);
	if (s->tombs) {
		fprintf(f, ") DELETE FROM %s AS tb USING kt, ins WHERE ", s->tombs);
		put_match(f, s, "ins.", "kt.");
		fprintf(f, " AND tb.tbl = %s AND tb.key = kt.\"pgcdc tkey\" AND tb.pos < ins.%s", s->tbl, pos);
	}
}

/*
 * The statement for a batch.  ST_MOVE returns a row (n, error) for each
 * event it left out because an unchanged column has no value: n counts the
 * rows sent, from 1.
 */
char *
sql_apply(const struct shape *s, enum statement kind)
{
	char *sql = NULL;
	size_t len;
	FILE *f = open_memstream(&sql, &len);

	if (f == NULL)
		die("out of memory");
	if (kind == ST_UPSERTS) {
		put_flat_upserts(f, s);
		if (fclose(f) != 0)
			die("out of memory");
		return sql;
	}
	if (kind == ST_STAGED)
		put_staged_events(f, s);
	else
		put_events(f, kind);
	if (kind == ST_APPLY || kind == ST_STAGED)
		put_typed_plain(f, s, kind == ST_STAGED);
	else if (kind == ST_MERGE)
		put_typed_merge(f, s);
	else {
		put_lineage(f, s);
		put_merged(f, s);
	}
	put_deletes(f, s);
	if (kind == ST_MOVE || s->tombs)
		fputs(", ins AS (", f);
	put_insert(f, s);
	if (kind == ST_MOVE || s->tombs)
		fputs(")", f);
	if (s->tombs)
		put_tomb_writes(f, s, kind == ST_MOVE);
	if (kind == ST_MOVE)
		fputs(" SELECT n, 'unchanged column \"' || name || '\" has no value: no row under the key or old_key'"
		    " FROM miss", f);
	if (fclose(f) != 0)
		die("out of memory");
	return sql;
}

/*
 * A truncate: every row whose guard is below its pos (older than it) is
 * removed, or marked deleted with the truncate's pos as its guard, so that
 * changes older than the truncate cannot bring it back.  Rows written after
 * it stay: applied after the batch, it gives the same table wherever it was
 * in the batch, and applying it again changes nothing.  Removed, with
 * tombstones, the table's tombstone keeps the guard instead, and the keys'
 * tombstones below it go: it covers them.
 */
char *
sql_truncate(const struct shape *s, int *nparams)
{
	const char *pos = s->cols[s->pos].name;
	char *sql = NULL;
	size_t len;
	FILE *f = open_memstream(&sql, &len);

	if (f == NULL)
		die("out of memory");
	*nparams = 1;
	if (s->tombs) {
		fprintf(f, "WITH tombed AS (INSERT INTO %s AS tb (tbl, key, pos, deleted_at) VALUES (%s, 'null',"
		    " $1::numeric, coalesce(to_timestamp($2::numeric / 1000), clock_timestamp()))", s->tombs, s->tbl);
		put_tomb_upsert(f);
		fprintf(f, "), covered AS (DELETE FROM %s AS tb WHERE tb.tbl = %s AND tb.key <> 'null'"
		    " AND tb.pos < $1::numeric) ", s->tombs, s->tbl);
		*nparams = 2;
	}
	if (s->del == DELETE_HARD)
		fprintf(f, "DELETE FROM %s AS t", s->table);
	else {
		fprintf(f, "UPDATE %s AS t SET %s = true, %s = $1::numeric", s->table,
		    s->cols[s->deleted].name, pos);
		if (s->ts >= 0) {
			fprintf(f, ", %s = coalesce(to_timestamp($2::numeric / 1000), clock_timestamp())",
			    s->cols[s->ts].name);
			*nparams = 2;
		}
	}
	fprintf(f, " WHERE t.%s IS NULL OR t.%s < $1::numeric", pos, pos);
	if (fclose(f) != 0)
		die("out of memory");
	return sql;
}

/*
 * The staging table of ST_STAGED, in the session, emptied at each commit:
 * the table's columns with their types (COPY checks each value as the
 * table would), then the event's pos, op and ts_ms, named apart from them.
 */
char *
sql_stage_create(const struct shape *s)
{
	char *sql = NULL;
	size_t len;
	FILE *f = open_memstream(&sql, &len);
	int i;

	if (f == NULL)
		die("out of memory");
	fprintf(f, "CREATE TEMP TABLE IF NOT EXISTS %s (", s->stage);
	for (i = 0; i < s->ncols; i++)
		fprintf(f, "%s %s, ", s->cols[i].name, s->cols[i].type);
	fputs("\"pgcdc p\" numeric, \"pgcdc o\" text, \"pgcdc t\" bigint) ON COMMIT DELETE ROWS", f);
	if (fclose(f) != 0)
		die("out of memory");
	return sql;
}
