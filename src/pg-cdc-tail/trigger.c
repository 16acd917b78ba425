/*
 * Trigger mode: read a table's change log (sql/cdc.sql) in batches bounded
 * by transaction snapshots, as PgQ does.  A batch is every log row whose
 * transaction is visible in snapshot hi and was not in snapshot lo; it is read
 * in pages ordered by log id.  Log ids are handed out before commit, so
 * "id > last" alone would skip a transaction that took its ids early and
 * committed late; snapshot visibility never does.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonout.h"
#include "log.h"
#include "pgconn.h"
#include "tail.h"

struct snap *
snap_new(const char *text)
{
	size_t len = strlen(text);
	struct snap *s = malloc(sizeof *s + len + 1);
	char *end;

	if (s == NULL)
		die("out of memory");
	s->refs = 1;
	memcpy(s->text, text, len + 1);
	s->xmin = strtoull(text, &end, 10);
	s->xmax = *end == ':' ? strtoull(end + 1, NULL, 10) : s->xmin;
	return s;
}

struct snap *
snap_ref(struct snap *s)
{
	if (s)
		s->refs++;
	return s;
}

void
snap_unref(struct snap *s)
{
	if (s && --s->refs == 0)
		free(s);
}

void
pos_set(struct pos *dst, const struct pos *src)
{
	struct snap *lo = snap_ref(src->lo), *hi = snap_ref(src->hi);

	pos_clear(dst);
	dst->lo = lo;
	dst->hi = hi;
	dst->last = src->last;
}

void
pos_clear(struct pos *p)
{
	snap_unref(p->lo);
	snap_unref(p->hi);
	p->lo = p->hi = NULL;
	p->last = 0;
}

static int
snap_equal(const struct snap *a, const struct snap *b)
{
	if (a == b)
		return 1;
	return a && b && strcmp(a->text, b->text) == 0;
}

int
pos_equal(const struct pos *a, const struct pos *b)
{
	return a->last == b->last && snap_equal(a->lo, b->lo) && snap_equal(a->hi, b->hi);
}

/* Run a one-row query with text parameters; NULL (logged) on error or no row. */
static PGresult *
query_row(PGconn *conn, const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (!pg_conn_lost(conn))
			log_error("query failed: %s", pg_errmsg(conn));
		PQclear(res);
		return NULL;
	}
	return res;
}

PGresult *
exec_prepared(PGconn *conn, const char *name, const char *sql, int n,
    const char *const *params, int *prepared)
{
	if (!*prepared) {
		PGresult *res = PQprepare(conn, name, sql, n, NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		*prepared = 1;
	}
	return PQexecPrepared(conn, name, n, params, NULL, NULL, 0);
}

/* The JSON fragment every event of this table starts its "table" field with. */
char *
event_prefix(const char *name)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		die("out of memory");
	fputs(",\"table\":", f);
	json_put_string(f, name, strlen(name));
	fputs(",\"key\":", f);
	fclose(f);
	return buf;
}

int
capture_installed(PGconn *conn)
{
	PGresult *res = query_row(conn, "SELECT to_regclass('cdc.captured') IS NOT NULL", 0, NULL);
	int ok;

	if (res == NULL)
		return -1;
	ok = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (!ok)
		log_error("capture is not installed in database \"%s\" (run sql/cdc.sql)", PQdb(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

/*
 * With --schema-events a schema row (op 's') also names the columns of the
 * schema it holds, as a JSON array in the form json_agg gives the catalog's
 * column names; the names of a change's members are read from its row here
 * (schema_row_names), which costs the server nothing.
 */
#define ROW_NAMES_SQL \
	"CASE WHEN op = 's' THEN (SELECT json_agg(c->>'name') FROM json_array_elements(after->'columns') c)::text END"

/*
 * The query for the schema in force at a log id ($1) of a table ($2): the
 * last schema row before it, else the schema at the first enable (cdc.sql
 * keeps it in cdc.captured.schema, enabled says whether this one does).
 */
static char *
schema_at_sql(const char *log, int enabled)
{
	char *sql = NULL;

	if (asprintf(&sql,
	    "SELECT s::text, (SELECT json_agg(c->>'name') FROM json_array_elements(s->'columns') c)::text"
	    "  FROM ((SELECT after AS s, 1 AS o FROM %s WHERE op = 's' AND id < $1 ORDER BY id DESC LIMIT 1)"
	    "        UNION ALL SELECT %s, 2 WHERE $2::oid IS NOT NULL) x"
	    " WHERE s IS NOT NULL ORDER BY o LIMIT 1", log,
	    enabled ? "(SELECT schema FROM cdc.captured WHERE tbl = $2::oid::regclass)" : "NULL::json") < 0)
		die("out of memory");
	return sql;
}

/*
 * The query for one page of a batch of log log: from after log id $1, the
 * rows of transactions visible in snapshot $5 but not in $4 (whose ids lie in
 * [$2, $3)), at most $6.  The first page of a batch has no id bound, and its
 * parameters start at the second: the rows of a batch may have any id above
 * those already read (a transaction takes its ids before it commits), so only
 * the txid index finds them, where "id > 0" would have the server walk the
 * whole primary key at every batch.
 */
static char *
page_query(const char *log, int old_key, int schema, int first)
{
	char *sql = NULL;

	if (asprintf(&sql,
	    "SELECT id, txid, op, (extract(epoch FROM ts) * 1000)::bigint, key, before, after, %s, %s"
	    "  FROM %s"
	    " WHERE %s txid >= $%d::xid8 AND txid < $%d::xid8"
	    "   AND NOT pg_visible_in_snapshot(txid, $%d::pg_snapshot)"
	    "   AND pg_visible_in_snapshot(txid, $%d::pg_snapshot)"
	    " ORDER BY id LIMIT $%d", old_key ? "old_key" : "NULL", schema ? ROW_NAMES_SQL : "NULL",
	    log, first ? "" : "id > $1 AND", 2 - first, 3 - first, 4 - first, 5 - first,
	    6 - first) < 0)
		die("out of memory");
	return sql;
}

/*
 * Look up table name: it must exist and have capture enabled.  Returns 0, or
 * -1 after a one-line error.
 */
int
tables_resolve(PGconn *conn, struct table *t, const char *name, int schema)
{
	const char *sql =
	    "SELECT c.oid::text, n.nspname || '.' || c.relname, cap.log::text,"
	    "       (SELECT format('SELECT json_build_object(%s)::text, row_to_json(t.*)::text FROM %s AS t',"
	    "                      string_agg(format('%L, t.%I', k, k), ', ' ORDER BY o), cap.tbl)"
	    "          FROM unnest(cap.key_columns) WITH ORDINALITY AS u(k, o)),"
	    "       EXISTS (SELECT FROM pg_attribute WHERE attrelid = cap.log AND attname = 'old_key'"
	    "                  AND NOT attisdropped),"
	    "       EXISTS (SELECT FROM pg_trigger WHERE tgrelid = c.oid AND tgname = 'zz_cdc_truncate'),"
	    "       EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'cdc.captured'::regclass"
	    "                  AND attname = 'schema' AND NOT attisdropped)"
	    "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	    "  LEFT JOIN cdc.captured cap ON cap.tbl = c.oid"
	    " WHERE c.oid = to_regclass($1)";
	const char *params[1] = { name };
	PGresult *res;
	int old_key;

	if (capture_installed(conn) < 0)
		return -1;
	res = query_row(conn, sql, 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		log_error("table \"%s\" does not exist", name);
		PQclear(res);
		return -1;
	}
	if (PQgetisnull(res, 0, 2)) {
		log_error("table \"%s\" has no capture enabled (run SELECT cdc.enable('%s'))",
		    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 1));
		PQclear(res);
		return -1;
	}
	t->regclass = xstrdup(PQgetvalue(res, 0, 0));
	t->name = xstrdup(PQgetvalue(res, 0, 1));
	t->snapshot_sql = xstrdup(PQgetvalue(res, 0, 3));
	old_key = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
	if (!old_key || strcmp(PQgetvalue(res, 0, 5), "t") != 0)
		log_warning("capture of \"%s\" predates truncate capture: a TRUNCATE is not logged"
		    " (run sql/cdc.sql again)", t->name);
	t->page_sql = page_query(PQgetvalue(res, 0, 2), old_key, schema, 0);
	t->first_sql = page_query(PQgetvalue(res, 0, 2), old_key, schema, 1);
	t->prefix = event_prefix(t->name);
	if (schema)
		t->schema_sql = schema_at_sql(PQgetvalue(res, 0, 2), strcmp(PQgetvalue(res, 0, 6), "t") == 0);
	PQclear(res);
	return 0;
}

void
table_free(struct table *t)
{
	free(t->name);
	free(t->regclass);
	free(t->page_sql);
	free(t->first_sql);
	free(t->snapshot_sql);
	free(t->prefix);
	free(t->schema);
	free(t->names);
	free(t->row_names);
	free(t->emitted);
	free(t->schema_sql);
	free(t->labels);
	pos_clear(&t->cur);
	pos_clear(&t->stored);
}

/* Advisory locks of pg-cdc-tail consumers: the first key ("pgcd"), the second a hash of the name. */
#define CONSUMER_LOCKS "1885823844"

int
consumer_lock(PGconn *conn, const char *consumer, long *pid)
{
	const char *params[1] = { consumer };
	PGresult *res = query_row(conn,
	    "SELECT pg_try_advisory_lock(" CONSUMER_LOCKS ", hashtext($1)),"
	    " (SELECT min(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
	    "   AND classid = " CONSUMER_LOCKS " AND objid = hashtext($1)::oid AND objsubid = 2"
	    "   AND pid <> pg_backend_pid())", 1, params);
	int taken;

	if (res == NULL)
		return -1;
	taken = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	*pid = strtol(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return taken;
}

int
prune_log(PGconn *conn, struct table *t)
{
	const char *params[1] = { t->regclass };
	PGresult *res = query_row(conn, "SELECT cdc.prune($1::oid::regclass)", 1, params);

	if (res == NULL)
		return -1;
	log_debug("%s: pruned %s log rows", t->name, PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

char *
current_snapshot(PGconn *conn)
{
	PGresult *res = query_row(conn, "SELECT pg_current_snapshot()::text", 0, NULL);
	char *s;

	if (res == NULL)
		return NULL;
	s = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return s;
}

void
put_field(FILE *out, PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		fputs("null", out);
	else
		json_put_oneline(out, PQgetvalue(res, row, col), PQgetlength(res, row, col));
}


/* One change of the log as an event line. */
static void
put_change(FILE *out, const struct table *t, PGresult *res, int i)
{
	fputs("{\"op\":\"", out);
	fputs(PQgetvalue(res, i, 2), out);
	fputc('"', out);
	fputs(t->prefix, out);
	json_put_compact(out, PQgetvalue(res, i, 4), PQgetlength(res, i, 4));
	if (!PQgetisnull(res, i, 7)) {
		/* the insert half of a key change: the key the row had */
		fputs(",\"old_key\":", out);
		json_put_compact(out, PQgetvalue(res, i, 7), PQgetlength(res, i, 7));
	}
	fputs(",\"before\":", out);
	put_field(out, res, i, 5);
	fputs(",\"after\":", out);
	put_field(out, res, i, 6);
	fprintf(out, ",\"pos\":%s,\"txid\":%s,\"ts_ms\":%s}\n",
	    PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 3));
}

/*
 * A schema row of the log (op 's', written by cdc.sql's event trigger within
 * an ALTER TABLE, whose lock puts it between the changes before and after):
 * the schema of the rows that follow it.
 */
static void
take_schema_row(struct table *t, PGresult *res, int i)
{
	free(t->schema);
	free(t->names);
	t->schema = json_compact_dup(PQgetvalue(res, i, 6), PQgetlength(res, i, 6));
	t->names = xstrdup(PQgetvalue(res, i, 8));
}

/*
 * The first change of t in this run: the schema in force at its log id, from
 * the log (or cdc.captured); 1 found, 0 not, -1 after an error.
 */
static int
schema_at(PGconn *conn, struct table *t, const char *id)
{
	const char *params[2] = { id, t->regclass };
	PGresult *res = query_row(conn, t->schema_sql, 2, params);

	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		t->schema = json_compact_dup(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
		t->names = xstrdup(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return t->schema != NULL;
}

/*
 * Is a schema event due before change i?  The first change of the table in
 * this run takes the schema in force at its log id; when none is recorded
 * (or no schema row tells of a change of columns: the row's member names
 * differ from the columns known), the catalog's, unless the row before had
 * the same names: reading it again would find nothing new.
 * 1 due, 0 not, -1 after an error.
 */
static int
schema_due(PGconn *conn, struct table *t, PGresult *res, int i)
{
	int col = PQgetisnull(res, i, 6) ? 5 : 6, reread;
	const char *row = PQgetisnull(res, i, col) ? NULL : PQgetvalue(res, i, col);
	char *names = NULL;

	/* most rows have the names of the row before: compared in place, not listed */
	if (row && (t->row_names == NULL ||
	    !schema_row_names_are(t->row_names, row, (size_t)PQgetlength(res, i, col))))
		names = schema_row_names(row, (size_t)PQgetlength(res, i, col));

	if (t->schema == NULL && schema_at(conn, t, PQgetvalue(res, i, 0)) < 0) {
		free(names);
		return -1;
	}
	reread = t->schema == NULL;

	if (names && t->names && strcmp(names, t->names) != 0 &&
	    (t->row_names == NULL || strcmp(names, t->row_names) != 0))
		reread = 1;
	if (names && (t->row_names == NULL || strcmp(names, t->row_names) != 0)) {
		free(t->row_names);
		t->row_names = names;
	} else {
		free(names);
	}
	if (reread) {
		char *schema, *cols;

		if (schema_read(conn, t->regclass, &schema, &cols) < 0)
			return -1;
		free(t->schema);
		free(t->names);
		t->schema = schema;
		t->names = cols;
	}
	return t->emitted == NULL || schema_differs(t->schema, t->emitted);
}

/* The "s" event of t's schema, with the pos, txid and ts_ms of change i. */
static void
put_schema(FILE *out, struct table *t, PGresult *res, int i)
{
	schema_put(out, t->prefix, t->schema, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
	    PQgetvalue(res, i, 3));
	free(t->emitted);
	t->emitted = xstrdup(t->schema);
}

/*
 * Write up to limit lines of t's batch in progress, from after t->cur.last;
 * a schema event due goes right before its change, counted among the lines.
 * A short page read whole completes the batch: lo moves up to hi.  Returns
 * the number of log rows taken, or -1 (logged unless the connection is lost).
 */
long
emit_page(PGconn *conn, struct table *t, struct emitter *e, long limit)
{
	char last[32], xmin[32], xmax[32], lim[32];
	const char *params[6] = {
		last, xmin, xmax, t->cur.lo ? t->cur.lo->text : "1:1:", t->cur.hi->text, lim
	};
	PGresult *res;
	long i, n, written = 0;
	int due;

	snprintf(last, sizeof last, "%" PRId64, t->cur.last);
	snprintf(xmin, sizeof xmin, "%" PRIu64, t->cur.lo ? t->cur.lo->xmin : 0);
	snprintf(xmax, sizeof xmax, "%" PRIu64, t->cur.hi->xmax);
	snprintf(lim, sizeof lim, "%ld", limit);
	/*
	 * Not prepared: a page is planned for its values, as the plan of a
	 * batch of ten rows (the txid index) and that of a batch of a million
	 * (the log in id order) differ, and a generic plan cannot tell them
	 * apart.
	 */
	if (t->cur.last == 0)
		res = PQexecParams(conn, t->first_sql, 5, NULL, params + 1, NULL, NULL, 0);
	else
		res = PQexecParams(conn, t->page_sql, 6, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (!pg_conn_lost(conn))
			log_error("cannot read the log of \"%s\": %s", t->name, pg_errmsg(conn));
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		if (*PQgetvalue(res, i, 2) == 's') {
			/* never an event of its own: it tells what the next changes are under */
			if (e->schema_events)
				take_schema_row(t, res, i);
		} else {
			due = e->schema_events ? schema_due(conn, t, res, i) : 0;
			if (due < 0) {
				PQclear(res);
				return -1;
			}
			if (due && written > 0 && written + 2 > limit)
				break;	/* the pair goes out together, in the next page */
			if (due) {
				put_schema(e->out, t, res, i);
				e->lines++;
				written++;
			}
			put_change(e->out, t, res, i);
			e->lines++;
			e->pos = strtoull(PQgetvalue(res, i, 0), NULL, 10);
			written++;
		}
		t->cur.last = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		if (e->win)
			window_push(e->win, e->lines, e->index, &t->cur);
	}
	PQclear(res);
	if (i == n && n < limit) {
		struct pos next = { t->cur.hi, NULL, 0 };

		pos_set(&t->cur, &next);
		if (e->win)
			window_push(e->win, e->lines, e->index, &t->cur);
	}
	return i;
}
