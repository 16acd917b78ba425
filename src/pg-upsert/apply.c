/*
 * Applying a batch: the valid lines go to the database as one JSON array and
 * one statement, inside a savepoint.  When the database refuses the batch for
 * a data reason, it is split in halves until each refused row stands alone;
 * those are dead-lettered and every other row still commits.  Transient
 * failures (connection lost, deadlock, serialization) abort the attempt so
 * the caller retries the whole batch: the guard column makes a replay a no-op.
 * Truncates follow the batch's other changes, and a constraint that refuses
 * the batch only at COMMIT has it applied again with the constraint checked
 * per statement, where the same splitting finds the rows.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "upsert.h"

static char last_error[512];
static struct sink *stale;
unsigned long batch_xact;

const char *
batch_error(void)
{
	return last_error;
}

struct sink *
batch_stale(void)
{
	return stale;
}

/* SQLSTATE classes: what a failure means for the batch. */
enum outcome
pg_classify(PGconn *conn, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	/* kept for the caller's message: a rollback clears the connection's */
	snprintf(last_error, sizeof last_error, "%s", msg ? msg : pg_errmsg(conn));

	if (pg_conn_lost(conn) || state == NULL)
		return TRANSIENT;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "40", 2) == 0 ||
	    strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0 ||
	    strncmp(state, "58", 2) == 0 || strcmp(state, "55P03") == 0)
		return TRANSIENT;
	/* data exceptions, constraint violations, errors raised by triggers, limits */
	if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
	    strcmp(state, "P0001") == 0 || strcmp(state, "54000") == 0 ||
	    strcmp(state, "42804") == 0)
		return APPLIED;	/* "the data": the caller isolates the row */
	/* a column or the table dropped under the statement: read the catalog again */
	if (strcmp(state, "42703") == 0 || strcmp(state, "42P01") == 0)
		return RELOAD;
	return FATAL;
}

/* What a failure of the statements applying sink s means: RELOAD names s. */
static enum outcome
classify_apply(PGconn *conn, PGresult *res, struct sink *s)
{
	enum outcome o = pg_classify(conn, res);

	if (o == RELOAD)
		stale = s;
	return o;
}

static enum outcome
command(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	enum outcome o = APPLIED;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		o = pg_classify(conn, res) == TRANSIENT ? TRANSIENT : FATAL;
		if (o == FATAL)
			log_error("%s: %s", sql, pg_errmsg(conn));
	}
	PQclear(res);
	return o;
}

/* The text parameters beside the rows: text[] literals, and JSON arrays for the last two. */
enum { P_POS, P_OP, P_TS, P_EX, P_UN, P_OK, NTEXT };

/* The statement's parameters for the lines of [lo, hi) still to apply. */
struct params {
	char *rows;		/* text[], binary: the rows as JSON text */
	int rows_len;
	FILE *f[NTEXT];
	char *s[NTEXT];
	size_t n[NTEXT];
	int has_un;		/* some row has "unchanged": the merge statement applies */
	int has_ok;		/* some row has "old_key" too: the move statement applies */
	size_t count;
};

/* Lines that go to the statement of sink s: valid, and not a truncate. */
static int
sent(const struct batch *b, size_t i, const struct sink *s)
{
	return b->state[i] == LINE_OK && b->sink[i] == s && b->ev[i].op != 't';
}

static void
put_be32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

/* Element k of text parameter which: text, or NULL (null in a JSON array) when len is 0. */
static void
put_text(struct params *pr, int which, size_t k, const char *text, size_t len)
{
	const char *none = which >= P_UN ? "null" : "NULL";

	fprintf(pr->f[which], "%s%.*s", k ? "," : "", (int)(len ? len : 4), len ? text : none);
}

static void
params_open(struct params *pr)
{
	int i;

	for (i = 0; i < NTEXT; i++) {
		if ((pr->f[i] = open_memstream(&pr->s[i], &pr->n[i])) == NULL)
			die("out of memory");
		fputc(i >= P_UN ? '[' : '{', pr->f[i]);
	}
}

static void
params_close(struct params *pr)
{
	int i;

	for (i = 0; i < NTEXT; i++) {
		fputc(i >= P_UN ? ']' : '}', pr->f[i]);
		if (fclose(pr->f[i]) != 0)
			die("out of memory");
	}
}

static void
params_build(const struct batch *b, const struct sink *s, size_t lo, size_t hi, struct params *pr)
{
	size_t i, k = 0, size = 20;
	char *w;

	memset(pr, 0, sizeof *pr);
	for (i = lo; i < hi; i++)
		if (sent(b, i, s))
			size += 4 + b->ev[i].row_len, pr->count++;
	if (pr->count == 0)
		return;
	/* a one-dimensional binary text[]: ndim, flags, element type, length, lower bound */
	if ((pr->rows = malloc(size)) == NULL)
		die("out of memory");
	put_be32(pr->rows, 1);
	put_be32(pr->rows + 4, 0);
	put_be32(pr->rows + 8, 25);	/* text */
	put_be32(pr->rows + 12, (uint32_t)pr->count);
	put_be32(pr->rows + 16, 1);
	w = pr->rows + 20;
	params_open(pr);
	for (i = lo; i < hi; i++) {
		const struct ev *e = &b->ev[i];
		const char *line = LINE_AT(b, i);

		if (!sent(b, i, s))
			continue;
		put_be32(w, (uint32_t)e->row_len);
		memcpy(w + 4, line + e->row, e->row_len);
		w += 4 + e->row_len;
		put_text(pr, P_POS, k, line + e->pos, e->pos_len);
		put_text(pr, P_OP, k, &e->op, 1);
		put_text(pr, P_EX, k, e->extra ? "t" : "f", 1);
		put_text(pr, P_TS, k, line + e->ts, e->ts_len);
		put_text(pr, P_UN, k, line + e->un, e->un_len);
		put_text(pr, P_OK, k, line + e->ok, e->ok_len);
		pr->has_un |= e->un_len > 0;
		pr->has_ok |= e->ok_len > 0;
		k++;
	}
	params_close(pr);
	pr->rows_len = (int)(w - pr->rows);
}

static void
params_free(struct params *pr)
{
	int i;

	free(pr->rows);
	for (i = 0; i < NTEXT; i++)
		free(pr->s[i]);
}

/* Refuse line i, with why as the reason of its dead letter. */
static void
refuse(struct batch *b, size_t i, const char *why)
{
	b->state[i] = LINE_REFUSED;
	free(b->why[i]);
	if ((b->why[i] = strdup(why)) == NULL)
		die("out of memory");
}

/* The move statement's rows: the events it left out, n counting the lines sent from 1. */
static void
refuse_listed(struct batch *b, const struct sink *s, size_t lo, size_t hi, size_t count, PGresult *res)
{
	int *left_out, r;	/* by n: 1 + the result row naming it, or 0 */
	size_t i, k = 0;

	if (PQntuples(res) == 0)
		return;
	if ((left_out = calloc(count + 1, sizeof *left_out)) == NULL)
		die("out of memory");
	for (r = 0; r < PQntuples(res); r++) {
		unsigned long long n = strtoull(PQgetvalue(res, r, 0), NULL, 10);

		if (n >= 1 && n <= count)
			left_out[n] = r + 1;
	}
	for (i = lo; i < hi; i++) {
		if (!sent(b, i, s))
			continue;
		k++;
		if (left_out[k])
			refuse(b, i, PQgetvalue(res, left_out[k] - 1, 1));
	}
	free(left_out);
}

/* Run the batch statement on lines [lo, hi); the caller handles its failure. */
static PGresult *
run_statement(PGconn *conn, const struct target *t, const struct params *pr)
{
	const char *values[7];
	int lengths[7] = { pr->rows_len }, formats[7] = { 1 }, n = 5, i;
	const char *sql = t->apply_sql;

	if (pr->has_un) {
		n = pr->has_ok ? 7 : 6;
		sql = pr->has_ok ? t->move_sql : t->merge_sql;
		log_debug("batch of %zu with unchanged columns: %s", pr->count, pr->s[P_UN]);
	}
	values[0] = pr->rows;
	for (i = 1; i < n; i++)
		values[i] = pr->s[i - 1];
	return PQexecParams(conn, sql, n, NULL, values, lengths, formats, 0);
}

/*
 * Was the staged attempt refused where the JSON path may not be: for a
 * reason of the data (the JSON path then says which row, in its own words,
 * or applies what a table changed since it was read takes), or for want of
 * the right to make a temporary table (the JSON path only, from now on)?
 */
static int
staged_refused(PGconn *conn, PGresult *res, struct target *t)
{
	const char *state;

	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
		return 0;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state && strcmp(state, "42501") == 0 && !pg_conn_lost(conn)) {
		log_debug("no staging table for \"%s\": %s", t->name, pg_errmsg(conn));
		free(t->stage_sql);
		t->stage_sql = NULL;
		return 1;
	}
	return pg_classify(conn, res) == APPLIED;
}

/*
 * The lines of sink s in [lo, hi): staged when they all can be, else, or
 * when the staged attempt was refused (*json set: the halves of a split go
 * that way straight away), by the JSON path.
 */
static PGresult *
run_range(PGconn *conn, struct sink *s, struct batch *b, size_t lo, size_t hi, int *json, int *released)
{
	struct params pr;
	PGresult *res;
	int rc;

	*released = 0;
	if (!*json) {
		rc = stage_apply(conn, s, b, lo, hi, &res);
		if (rc == 0 && !staged_refused(conn, res, &s->t)) {
			*released = PQresultStatus(res) == PGRES_COMMAND_OK;
			return res;
		}
		if (rc == 0) {
			PQclear(res);
			*json = 1;
		}
		/* what the staged attempt did; should this fail, so does the statement below, and says why */
		if (rc >= 0)
			PQclear(PQexec(conn, "ROLLBACK TO SAVEPOINT pgcdc_batch"));
	}
	params_build(b, s, lo, hi, &pr);
	res = run_statement(conn, &s->t, &pr);
	params_free(&pr);
	return res;
}

/* How many lines of [lo, hi) go to the statement of sink s. */
static size_t
count_sent(const struct batch *b, const struct sink *s, size_t lo, size_t hi)
{
	size_t i, n = 0;

	for (i = lo; i < hi; i++)
		n += sent(b, i, s);
	return n;
}

/* Apply the lines of sink s in [lo, hi) under a savepoint, splitting on data errors. */
static enum outcome
apply_range(PGconn *conn, struct sink *s, struct batch *b, size_t lo, size_t hi, int json)
{
	const struct target *t = &s->t;
	PGresult *res;
	enum outcome o;
	size_t i, count;
	int released;

	if ((count = count_sent(b, s, lo, hi)) == 0)
		return APPLIED;
	if ((o = command(conn, "SAVEPOINT pgcdc_batch")) != APPLIED)
		return o;
	res = run_range(conn, s, b, lo, hi, &json, &released);
	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK) {
		refuse_listed(b, s, lo, hi, count, res);
		PQclear(res);
		return released ? APPLIED : command(conn, "RELEASE SAVEPOINT pgcdc_batch");
	}
	o = classify_apply(conn, res, s);
	if (o != APPLIED) {
		if (o == FATAL)
			log_error("cannot apply to \"%s\": %s", t->name, pg_errmsg(conn));
		PQclear(res);
		return o;
	}
	if (count == 1) {
		/* the error, from the result: the rollback below clears the connection's */
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		for (i = lo; i < hi; i++)
			if (sent(b, i, s))
				refuse(b, i, msg ? msg : "refused by the database");
	}
	PQclear(res);
	if ((o = command(conn, "ROLLBACK TO SAVEPOINT pgcdc_batch")) != APPLIED || count == 1)
		return o;
	log_debug("batch of %zu refused; splitting", count);
	if ((o = apply_range(conn, s, b, lo, lo + (hi - lo) / 2, json)) != APPLIED)
		return o;
	return apply_range(conn, s, b, lo + (hi - lo) / 2, hi, json);
}

/* Is pos a (digits only) greater than pos b? */
static int
pos_greater(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return alen > blen;
	return memcmp(a, b, alen) > 0;
}

/*
 * The truncates of the batch, after its other changes: only the latest
 * matters, as it removes every row an earlier one would.  Refused for a
 * reason of the data, every truncate of the batch is dead-lettered.
 */
static enum outcome
apply_truncates(PGconn *conn, struct sink *s, struct batch *b)
{
	const struct target *t = &s->t;
	const struct ev *last = NULL;
	const char *lline = NULL, *values[2];
	char pos[24], ts[24];
	PGresult *res;
	enum outcome o;
	size_t i;

	for (i = 0; i < b->n; i++) {
		const struct ev *e = &b->ev[i];
		const char *line = LINE_AT(b, i);

		if (b->state[i] == LINE_OK && b->sink[i] == s && e->op == 't' &&
		    (last == NULL || pos_greater(line + e->pos, e->pos_len, lline + last->pos, last->pos_len)))
			last = e, lline = line;
	}
	if (last == NULL)
		return APPLIED;
	snprintf(pos, sizeof pos, "%.*s", (int)last->pos_len, lline + last->pos);
	snprintf(ts, sizeof ts, "%.*s", (int)last->ts_len, lline + last->ts);
	values[0] = pos;
	values[1] = last->ts_len && last->ts_len < sizeof ts ? ts : NULL;
	if ((o = command(conn, "SAVEPOINT pgcdc_truncate")) != APPLIED)
		return o;
	log_debug("truncate at pos %s", pos);
	res = PQexecParams(conn, t->trunc_sql, t->trunc_params, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		return command(conn, "RELEASE SAVEPOINT pgcdc_truncate");
	}
	if ((o = classify_apply(conn, res, s)) == APPLIED) {
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		for (i = 0; i < b->n; i++)
			if (b->state[i] == LINE_OK && b->sink[i] == s && b->ev[i].op == 't')
				refuse(b, i, msg ? msg : "refused by the database");
		o = command(conn, "ROLLBACK TO SAVEPOINT pgcdc_truncate");
	} else if (o == FATAL)
		log_error("cannot truncate \"%s\": %s", t->name, pg_errmsg(conn));
	PQclear(res);
	return o;
}

/* The dead letters of the batch into --dlq-table, in the same transaction. */
static enum outcome
dlq_rows(PGconn *conn, const char *dlq_sql, struct batch *b)
{
	size_t i;

	if (dlq_sql == NULL)
		return APPLIED;
	for (i = 0; i < b->n; i++) {
		const char *err = b->why[i];
		const char *params[2] = { b->text + b->off[i], err };
		int lengths[2] = { (int)b->len[i], 0 };
		int formats[2] = { 1, 0 };
		PGresult *res;
		enum outcome o;

		if (err == NULL)
			continue;
		res = PQexecParams(conn, dlq_sql, 2, NULL, params, lengths, formats, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			o = pg_classify(conn, res) == TRANSIENT ? TRANSIENT : FATAL;
			if (o == FATAL)
				log_error("cannot write to the dead-letter table: %s", pg_errmsg(conn));
			PQclear(res);
			return o;
		}
		PQclear(res);
	}
	return APPLIED;
}

/* COMMIT: a constraint checked only now may refuse the batch for a reason of the data. */
static enum outcome
commit(PGconn *conn)
{
	PGresult *res = PQexec(conn, "COMMIT");
	enum outcome o = APPLIED;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		o = pg_classify(conn, res);
		o = o == APPLIED ? REFUSED : o == RELOAD ? FATAL : o;
		if (o == FATAL)
			log_error("COMMIT: %s", pg_errmsg(conn));
	}
	PQclear(res);
	return o;
}

/*
 * A retry starts over: what the database refused may have been a symptom.
 * Lines of a table that went missing or unfit since they were read are
 * dead-lettered with the reason.
 */
static void
attempt_reset(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		if (b->state[i] == LINE_REFUSED) {
			b->state[i] = LINE_OK;
			free(b->why[i]);
			b->why[i] = NULL;
		}
		if (b->state[i] == LINE_OK && b->sink[i] && b->sink[i]->state != SINK_READY)
			refuse(b, i, b->sink[i]->refuse ? b->sink[i]->refuse : "table not loaded");
	}
}

/* Each table's lines with its statements, its truncates after them; tables in order of first line. */
static enum outcome
apply_tables(PGconn *conn, struct batch *b)
{
	enum outcome o = APPLIED;
	size_t i, j;

	for (i = 0; i < b->n && o == APPLIED; i++) {
		if (b->sink[i] == NULL)
			continue;
		for (j = 0; j < i; j++)
			if (b->sink[j] == b->sink[i])
				break;
		if (j < i)
			continue;	/* applied with its first line */
		o = apply_range(conn, b->sink[i], b, 0, b->n, b->copy_refused);
		if (o == APPLIED)
			o = apply_truncates(conn, b->sink[i], b);
	}
	return o;
}

/* One transaction for the batch; immediate: deferred constraints checked after each statement. */
static enum outcome
attempt(PGconn *conn, const char *dlq_sql, struct batch *b, int immediate)
{
	enum outcome o;

	attempt_reset(b);
	batch_xact++;
	if ((o = command(conn, immediate ? "BEGIN; SET CONSTRAINTS ALL IMMEDIATE" : "BEGIN")) != APPLIED)
		return o;
	o = apply_tables(conn, b);
	if (o == APPLIED)
		o = dlq_rows(conn, dlq_sql, b);
	if (o == APPLIED)
		o = commit(conn);
	else if (!pg_conn_lost(conn))
		command(conn, "ROLLBACK");
	return o;
}

/*
 * A constraint checked at COMMIT (deferred) that refuses the batch would
 * refuse it again on every retry: the batch is applied again with those
 * constraints checked after each statement, where the failing rows can be
 * told apart and dead-lettered like any other refused row.
 */
enum outcome
batch_apply(PGconn *conn, const char *dlq_sql, struct batch *b)
{
	enum outcome o = attempt(conn, dlq_sql, b, 0);

	if (o != REFUSED)
		return o;
	log_debug("COMMIT refused: %s; applying again with constraints checked per statement", last_error);
	if ((o = attempt(conn, dlq_sql, b, 1)) == REFUSED) {
		log_error("cannot commit the batch: %s", last_error);
		o = FATAL;
	}
	return o;
}

enum outcome
batch_settle(PGconn *conn)
{
	PGresult *res, *failed = NULL;
	enum outcome o;

	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (failed == NULL && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			failed = res;
		else
			PQclear(res);
	}
	/* committed: every result good, and the transaction over */
	if (failed == NULL && !pg_conn_lost(conn) && PQtransactionStatus(conn) == PQTRANS_IDLE)
		return APPLIED;
	o = pg_classify(conn, failed);
	PQclear(failed);
	if (!pg_conn_lost(conn) && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
	return o == APPLIED ? REFUSED : o;
}
