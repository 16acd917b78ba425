/*
 * The staged path: the client converts each event's row into the table's
 * columns itself (the scanner finds every column's value in one pass) and
 * sends the batch by COPY into a temporary staging table, where one
 * set-based statement applies it.  The server then parses no JSON: most of
 * what the JSON path cost was json_populate_record and the text[] arrays.
 *
 * A batch goes this way only when each of its rows converts exactly as
 * json_populate_record would read it; anything else (extra members, the
 * "unchanged" and "old_key" merges, a \u0000 in a string, an object for a
 * column that is not json) takes the JSON path, which stays the reference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "log.h"
#include "pgconn.h"
#include "upsert.h"

/* A growing buffer of COPY text. */
struct out {
	char *s;
	size_t len, cap;
};

static void
reserve(struct out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return;
	while (o->cap < o->len + n)
		o->cap = o->cap ? o->cap * 2 : 1 << 16;
	if ((o->s = realloc(o->s, o->cap)) == NULL)
		die("out of memory");
}

static void
put_raw(struct out *o, const char *s, size_t n)
{
	reserve(o, n);
	memcpy(o->s + o->len, s, n);
	o->len += n;
}

/* s[0..n) as COPY text: backslash, tab, newline and carriage return escaped. */
static void
put_escaped(struct out *o, const char *s, size_t n)
{
	size_t i;

	reserve(o, 2 * n);
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
			o->s[o->len++] = '\\';
			c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : c;
		}
		o->s[o->len++] = c;
	}
}

/*
 * One JSON value v[0..n) (NULL: the member is missing) as the COPY text of a
 * column that takes it as conv says; -1 when only the JSON path can.
 */
static int
put_value(struct out *o, const char *v, size_t n, enum conv conv, char **tmp, size_t *tmpcap)
{
	long dn;

	if (v == NULL || (n == 4 && memcmp(v, "null", 4) == 0)) {
		put_raw(o, "\\N", 2);
		return 0;
	}
	if (conv == CONV_JSON) {
		put_escaped(o, v, n);
		return 0;
	}
	if (*v == '{' || *v == '[')
		return -1;	/* json_populate_record makes arrays and records of these */
	if (*v != '"') {
		put_raw(o, v, n);	/* a number, true or false: as written */
		return 0;
	}
	if (memchr(v + 1, '\\', n - 2) == NULL) {
		/* no escape: no byte COPY text would escape either (JSON has no raw control bytes in strings) */
		put_raw(o, v + 1, n - 2);
		return 0;
	}
	if (*tmpcap < n) {
		*tmpcap = n;
		if ((*tmp = realloc(*tmp, n)) == NULL)
			die("out of memory");
	}
	/* decoded, a string is never longer than its JSON text */
	dn = json_key_text(v, n, *tmp, n);
	if (dn < 0 || memchr(*tmp, '\0', (size_t)dn))
		return -1;	/* the server refuses \u0000: its message is the JSON path's */
	put_escaped(o, *tmp, (size_t)dn);
	return 0;
}

/* The COPY row of event e: the table's columns, then pos, op and ts_ms; -1: it cannot be staged. */
static int
put_row(struct out *o, const struct target *t, const char *line, const struct ev *e,
    const char **vals, size_t *vlens, char **tmp, size_t *tmpcap)
{
	int i;

	row_fields(line + e->row, e->row_len, t->scols, t->sclens, t->nscols, vals, vlens);
	for (i = 0; i < t->nscols; i++) {
		if (put_value(o, vals[i], vlens[i], (enum conv)t->sconv[i], tmp, tmpcap) < 0)
			return -1;
		put_raw(o, "\t", 1);
	}
	put_raw(o, line + e->pos, e->pos_len);
	put_raw(o, "\t", 1);
	put_raw(o, &e->op, 1);
	put_raw(o, "\t", 1);
	if (e->ts_len)
		put_raw(o, line + e->ts, e->ts_len);
	else
		put_raw(o, "\\N", 2);
	put_raw(o, "\n", 1);
	return 0;
}

/* Lines of [lo, hi) the statement of sink s takes: valid, not a truncate. */
static int
taken(const struct batch *b, size_t i, const struct sink *s)
{
	return b->state[i] == LINE_OK && b->sink[i] == s && b->ev[i].op != 't';
}

/* Can the lines go staged, as far as their event says (their values may still say no)? */
static int
stageable(const struct batch *b, const struct sink *s, size_t lo, size_t hi, int *deletes)
{
	size_t i;

	*deletes = 0;
	if (s->t.stage_sql == NULL)
		return 0;
	for (i = lo; i < hi; i++) {
		const struct ev *e = &b->ev[i];

		if (!taken(b, i, s))
			continue;
		if (e->extra || e->un_len || e->ok_len)
			return 0;
		*deletes |= e->op == 'd' || e->op == 'k';
	}
	return 1;
}

/* The COPY's end: NULL when it took the rows, else its failure; the connection is ready for more. */
static PGresult *
copy_end(PGconn *conn, const char *abort)
{
	PGresult *res, *more;

	PQputCopyEnd(conn, abort);
	res = PQgetResult(conn);
	while ((more = PQgetResult(conn)) != NULL)
		PQclear(more);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		return NULL;
	}
	return res;
}

/*
 * COPY the lines into the staging table as they are converted: the server
 * parses one piece while the next is made.  *unstaged when a value cannot
 * be converted: the COPY is abandoned (undone by the caller's savepoint).
 */
static PGresult *
copy_lines(PGconn *conn, const struct sink *s, const struct batch *b, size_t lo, size_t hi, int *unstaged,
    const char *copy_sql)
{
	const struct target *t = &s->t;
	struct out o = { 0 };
	const char **vals;
	size_t *vlens, i, tmpcap = 0;
	char *tmp = NULL;
	int rc = 0, sent = 1;
	PGresult *res = PQexec(conn, copy_sql);

	if (PQresultStatus(res) != PGRES_COPY_IN)
		return res;
	PQclear(res);
	if ((vals = calloc(t->nscols, sizeof *vals)) == NULL || (vlens = calloc(t->nscols, sizeof *vlens)) == NULL)
		die("out of memory");
	for (i = lo; i < hi && rc == 0 && sent == 1; i++) {
		if (!taken(b, i, s))
			continue;
		rc = put_row(&o, t, LINE_AT(b, i), &b->ev[i], vals, vlens, &tmp, &tmpcap);
		if (rc == 0 && o.len >= (1 << 18)) {
			sent = PQputCopyData(conn, o.s, (int)o.len);
			o.len = 0;
		}
	}
	if (rc == 0 && sent == 1 && o.len > 0)
		sent = PQputCopyData(conn, o.s, (int)o.len);
	free(vals);
	free(vlens);
	free(tmp);
	free(o.s);
	*unstaged = rc < 0;
	res = copy_end(conn, rc < 0 ? "pg-upsert: a row is not staged" : NULL);
	if (*unstaged) {
		PQclear(res);
		return NULL;
	}
	return res;
}

/*
 * Apply lines [lo, hi) of sink s through its staging table: 0 and *res,
 * the failing step's result or, when it succeeded, that of the release of
 * the savepoint pgcdc_batch that follows it; -1 when they cannot go
 * staged, 1 when a value said so once the COPY had begun (the caller's
 * savepoint undoes it).
 */
int
stage_apply(PGconn *conn, struct sink *s, const struct batch *b, size_t lo, size_t hi, PGresult **res)
{
	struct target *t = &s->t;
	const char *copy_sql;
	int deletes, unstaged = 0;

	if (!stageable(b, s, lo, hi, &deletes))
		return -1;
	/* filled earlier in this transaction: ON COMMIT has not emptied it */
	copy_sql = t->stage_xact == batch_xact ? t->clear_sql : t->copy_sql;
	t->stage_xact = batch_xact;
	if ((*res = copy_lines(conn, s, b, lo, hi, &unstaged, copy_sql)) != NULL)
		return 0;
	if (unstaged)
		return 1;
	*res = PQexec(conn, deletes ? t->staged_release : t->upserts_release);
	return 0;
}

/*
 * The one sink of the batch's valid lines, when the batch can go as one
 * transaction sent at once: no truncate, and no dead letter to insert into
 * --dlq-table beside it (dlq_table); else NULL.
 */
static struct sink *
sole_sink(const struct batch *b, int dlq_table)
{
	struct sink *s = NULL;
	size_t i;

	for (i = 0; i < b->n; i++) {
		if (dlq_table && b->why[i])
			return NULL;
		if (b->state[i] != LINE_OK || b->sink[i] == NULL)
			continue;
		if ((s && b->sink[i] != s) || b->ev[i].op == 't')
			return NULL;
		s = b->sink[i];
	}
	return s && s->state == SINK_READY ? s : NULL;
}

void
stage_build(struct batch *b, int dlq_table)
{
	struct sink *s = sole_sink(b, dlq_table);
	struct out o = { b->copy, 0, b->copy_cap };
	const char **vals;
	size_t *vlens, i, tmpcap = 0;
	char *tmp = NULL;
	int rc = 0;

	b->copy_sink = NULL;
	if (s == NULL || !stageable(b, s, 0, b->n, &b->copy_deletes))
		return;
	if ((vals = calloc(s->t.nscols, sizeof *vals)) == NULL || (vlens = calloc(s->t.nscols, sizeof *vlens)) == NULL)
		die("out of memory");
	for (i = 0; i < b->n && rc == 0; i++)
		if (taken(b, i, s))
			rc = put_row(&o, &s->t, LINE_AT(b, i), &b->ev[i], vals, vlens, &tmp, &tmpcap);
	free(vals);
	free(vlens);
	free(tmp);
	b->copy = o.s;
	b->copy_cap = o.cap;
	b->copy_len = o.len;
	if (rc == 0)
		b->copy_sink = s;
}

/* The COPY text, in pieces a protocol message holds: 0 when the server took it all. */
static int
put_copy(PGconn *conn, const char *s, size_t len)
{
	size_t n;

	for (; len > 0; s += n, len -= n) {
		n = len < (1 << 20) ? len : (1 << 20);
		if (PQputCopyData(conn, s, (int)n) != 1)
			return -1;
	}
	return 0;
}

int
stage_send(PGconn *conn, struct batch *b)
{
	struct target *t = &b->copy_sink->t;
	char *sql = strf("BEGIN; %s", t->copy_sql);
	PGresult *res;
	int ok;

	/* a new transaction: the staging table starts empty, ON COMMIT emptied it */
	t->stage_xact = ++batch_xact;
	res = PQexec(conn, sql);
	free(sql);
	/* a failure's message kept for batch_error, as batch_apply keeps it */
	if (!(ok = PQresultStatus(res) == PGRES_COPY_IN))
		pg_classify(conn, res);
	PQclear(res);
	if (ok) {
		ok = put_copy(conn, b->copy, b->copy_len) == 0;
		if ((res = copy_end(conn, ok ? NULL : "pg-upsert: the rows were not sent")) != NULL) {
			b->copy_refused = pg_classify(conn, res) == APPLIED && ok;
			ok = 0;
		}
		PQclear(res);
	}
	if (ok) {
		/* a failure of the statement skips the COMMIT after it: the transaction is left aborted */
		sql = strf("%s; COMMIT", b->copy_deletes ? t->staged_sql : t->upserts_sql);
		ok = PQsendQuery(conn, sql);
		free(sql);
		if (ok)
			return 0;
		pg_classify(conn, NULL);
	}
	if (!pg_conn_lost(conn) && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}
