/*
 * Applying a batch: the valid lines go to the database as one JSON array and
 * one statement, inside a savepoint.  When the database refuses the batch for
 * a data reason, it is split in halves until each refused row stands alone;
 * those are dead-lettered and every other row still commits.  Transient
 * failures (connection lost, deadlock, serialization) abort the attempt so
 * the caller retries the whole batch: the guard column makes a replay a no-op.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "log.h"
#include "pgconn.h"
#include "upsert.h"

enum { F_OP, F_POS, F_KEY, F_AFTER, F_BEFORE, F_TS, F_UNCHANGED, NFIELDS };

/* Why the object obj lacks a key column, or NULL. */
static const char *
key_present(const char *obj, size_t len, const struct target *t, const char *what)
{
	const char *kv[64];
	size_t kl[64];
	static char buf[200];
	int i;

	if (t->nkeys > 64)
		return "too many key columns";
	json_scan_fields(obj, len, (const char *const *)t->keys, t->nkeys, kv, kl);
	for (i = 0; i < t->nkeys; i++) {
		if (kv[i] == NULL || (kl[i] == 4 && memcmp(kv[i], "null", 4) == 0)) {
			snprintf(buf, sizeof buf, "missing key: no value for key column \"%.100s\" in \"%s\"",
			    t->keys[i], what);
			return buf;
		}
	}
	return NULL;
}

/* Why a line is not an event the target can take, or NULL. */
const char *
event_check(const char *line, size_t len, const struct target *t, struct ev *ev)
{
	static const char *const fields[NFIELDS] = {
		"op", "pos", "key", "after", "before", "ts_ms", "unchanged"
	};
	const char *v[NFIELDS], *why, *p = line;
	size_t vl[NFIELDS];
	int row;

	if ((why = json_scan_fields(line, len, fields, NFIELDS, v, vl)) != NULL)
		return why;
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	if (*p != '{')
		return "not an event: not a JSON object";
	if (v[F_OP] == NULL || vl[F_OP] != 3 || v[F_OP][0] != '"' || !strchr("cudr", v[F_OP][1]) ||
	    v[F_OP][2] != '"')
		return "not an event: \"op\" is not one of c, u, d, r";
	if (v[F_POS] == NULL || vl[F_POS] > 20 || strspn(v[F_POS], "0123456789") != vl[F_POS] ||
	    (vl[F_POS] == 20 && memcmp(v[F_POS], "18446744073709551615", 20) > 0))
		return "not an event: \"pos\" is not an unsigned 64-bit integer";
	if (v[F_TS] && !(vl[F_TS] == 4 && memcmp(v[F_TS], "null", 4) == 0) &&
	    strspn(v[F_TS], "-0123456789") != vl[F_TS])
		return "not an event: \"ts_ms\" is not an integer";
	if (v[F_UNCHANGED] && v[F_UNCHANGED][0] != '[' &&
	    !(vl[F_UNCHANGED] == 4 && memcmp(v[F_UNCHANGED], "null", 4) == 0))
		return "not an event: \"unchanged\" is not an array of column names";
	if (v[F_KEY] == NULL || v[F_KEY][0] != '{')
		return "missing key: no \"key\" object";
	if (v[F_OP][1] != 'd' && (v[F_AFTER] == NULL || v[F_AFTER][0] != '{'))
		return "not an event: no \"after\" row";
	if ((why = key_present(v[F_KEY], vl[F_KEY], t, "key")) != NULL)
		return why;
	/* the row applied, which must hold the key too: after, a delete's old row, or its key */
	if (v[F_OP][1] != 'd')
		row = F_AFTER;
	else
		row = v[F_BEFORE] && v[F_BEFORE][0] == '{' ? F_BEFORE : F_KEY;
	if (row != F_KEY && (why = key_present(v[row], vl[row], t, fields[row])) != NULL)
		return why;
	ev->extra = 0;
	if (t->ncols > 0 && row != F_KEY) {
		const char *cv[256];
		size_t cl[256];
		int members, found = 0, i;

		json_scan_members(v[row], vl[row], (const char *const *)t->cols, t->ncols, cv, cl, &members);
		for (i = 0; i < t->ncols; i++)
			found += cv[i] != NULL;
		ev->extra = members > found;
	}
	ev->op = row == F_KEY ? 'k' : v[F_OP][1];
	ev->row = (size_t)(v[row] - line);
	ev->row_len = vl[row];
	ev->pos = (size_t)(v[F_POS] - line);
	ev->pos_len = vl[F_POS];
	ev->ts = v[F_TS] ? (size_t)(v[F_TS] - line) : 0;
	ev->ts_len = v[F_TS] && !(vl[F_TS] == 4 && memcmp(v[F_TS], "null", 4) == 0) ? vl[F_TS] : 0;
	/* logical capture names the unchanged TOASTed columns it could not send */
	ev->un_len = 0;
	if (row == F_AFTER && v[F_UNCHANGED] && v[F_UNCHANGED][0] == '[') {
		ev->un = (size_t)(v[F_UNCHANGED] - line);
		ev->un_len = vl[F_UNCHANGED];
	}
	return NULL;
}

static char last_error[512];

const char *
batch_error(void)
{
	return last_error;
}

/* SQLSTATE classes: what a failure means for the batch. */
static enum outcome
classify(PGconn *conn, PGresult *res)
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
	return FATAL;
}

static enum outcome
command(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	enum outcome o = APPLIED;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		o = classify(conn, res) == TRANSIENT ? TRANSIENT : FATAL;
		if (o == FATAL)
			log_error("%s: %s", sql, pg_errmsg(conn));
	}
	PQclear(res);
	return o;
}

/* The statement's parameters for the lines of [lo, hi) still to apply. */
struct params {
	char *rows;		/* text[], binary: the rows as JSON text */
	int rows_len;
	FILE *pos, *op, *ts, *ex;	/* text[] literals */
	char *pos_s, *op_s, *ts_s, *ex_s;
	size_t pos_n, op_n, ts_n, ex_n;
	FILE *un;		/* JSON array: each row's "unchanged", or null */
	char *un_s;
	size_t un_n;
	int has_un;		/* some row has one: the merge statement applies */
	size_t count;
};

static void
put_be32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

static void
params_build(const struct batch *b, size_t lo, size_t hi, struct params *pr)
{
	size_t i, size = 20;
	char *w;

	memset(pr, 0, sizeof *pr);
	for (i = lo; i < hi; i++)
		if (b->state[i] == LINE_OK)
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
	pr->pos = open_memstream(&pr->pos_s, &pr->pos_n);
	pr->op = open_memstream(&pr->op_s, &pr->op_n);
	pr->ts = open_memstream(&pr->ts_s, &pr->ts_n);
	pr->ex = open_memstream(&pr->ex_s, &pr->ex_n);
	pr->un = open_memstream(&pr->un_s, &pr->un_n);
	if (!pr->pos || !pr->op || !pr->ts || !pr->ex || !pr->un)
		die("out of memory");
	fputc('{', pr->pos);
	fputc('{', pr->op);
	fputc('{', pr->ts);
	fputc('{', pr->ex);
	fputc('[', pr->un);
	for (i = lo; i < hi; i++) {
		const struct ev *e = &b->ev[i];
		const char *line = b->text + b->off[i];
		int first = w == pr->rows + 20;

		if (b->state[i] != LINE_OK)
			continue;
		put_be32(w, (uint32_t)e->row_len);
		memcpy(w + 4, line + e->row, e->row_len);
		w += 4 + e->row_len;
		fprintf(pr->pos, "%s%.*s", first ? "" : ",", (int)e->pos_len, line + e->pos);
		fprintf(pr->op, "%s%c", first ? "" : ",", e->op);
		fprintf(pr->ex, "%s%c", first ? "" : ",", e->extra ? 't' : 'f');
		if (e->un_len)
			fprintf(pr->un, "%s%.*s", first ? "" : ",", (int)e->un_len, line + e->un);
		else
			fprintf(pr->un, "%snull", first ? "" : ",");
		pr->has_un |= e->un_len > 0;
		if (e->ts_len)
			fprintf(pr->ts, "%s%.*s", first ? "" : ",", (int)e->ts_len, line + e->ts);
		else
			fprintf(pr->ts, "%sNULL", first ? "" : ",");
	}
	fputc('}', pr->pos);
	fputc('}', pr->op);
	fputc('}', pr->ts);
	fputc('}', pr->ex);
	fputc(']', pr->un);
	fclose(pr->un);
	fclose(pr->pos);
	fclose(pr->op);
	fclose(pr->ts);
	fclose(pr->ex);
	pr->rows_len = (int)(w - pr->rows);
}

static void
params_free(struct params *pr)
{
	free(pr->rows);
	free(pr->pos_s);
	free(pr->op_s);
	free(pr->ts_s);
	free(pr->ex_s);
	free(pr->un_s);
}

/* Apply lines [lo, hi) under a savepoint, splitting on data errors. */
static enum outcome
apply_range(PGconn *conn, const struct target *t, struct batch *b, size_t lo, size_t hi)
{
	struct params pr;
	const char *values[6];
	int lengths[6] = { 0 }, formats[6] = { 1, 0, 0, 0, 0, 0 };
	PGresult *res;
	enum outcome o;
	size_t i;

	params_build(b, lo, hi, &pr);
	if (pr.count == 0)
		return APPLIED;
	if ((o = command(conn, "SAVEPOINT pgcdc_batch")) != APPLIED) {
		params_free(&pr);
		return o;
	}
	values[0] = pr.rows;
	lengths[0] = pr.rows_len;
	values[1] = pr.pos_s;
	values[2] = pr.op_s;
	values[3] = pr.ts_s;
	values[4] = pr.ex_s;
	values[5] = pr.un_s;
	if (pr.has_un)
		log_debug("batch of %zu with unchanged columns: %s", pr.count, pr.un_s);
	res = PQexecParams(conn, pr.has_un ? t->merge_sql : t->apply_sql, pr.has_un ? 6 : 5, NULL,
	    values, lengths, formats, 0);
	params_free(&pr);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		return command(conn, "RELEASE SAVEPOINT pgcdc_batch");
	}
	o = classify(conn, res);
	if (o != APPLIED) {
		if (o == FATAL)
			log_error("cannot apply to \"%s\": %s", t->name, pg_errmsg(conn));
		PQclear(res);
		return o;
	}
	if (pr.count == 1) {
		/* the error, from the result: the rollback below clears the connection's */
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		for (i = lo; i < hi; i++) {
			if (b->state[i] == LINE_OK) {
				b->state[i] = LINE_REFUSED;
				if ((b->why[i] = strdup(msg ? msg : "refused by the database")) == NULL)
					die("out of memory");
			}
		}
	}
	if ((o = command(conn, "ROLLBACK TO SAVEPOINT pgcdc_batch")) != APPLIED || pr.count == 1) {
		PQclear(res);
		return o;
	}
	PQclear(res);
	log_debug("batch of %zu refused; splitting", pr.count);
	if ((o = apply_range(conn, t, b, lo, lo + (hi - lo) / 2)) != APPLIED)
		return o;
	return apply_range(conn, t, b, lo + (hi - lo) / 2, hi);
}

/* The dead letters of the batch into --dlq-table, in the same transaction. */
static enum outcome
dlq_rows(PGconn *conn, const struct target *t, struct batch *b)
{
	size_t i;

	if (t->dlq_sql == NULL)
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
		res = PQexecParams(conn, t->dlq_sql, 2, NULL, params, lengths, formats, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			o = classify(conn, res) == TRANSIENT ? TRANSIENT : FATAL;
			if (o == FATAL)
				log_error("cannot write to the dead-letter table: %s", pg_errmsg(conn));
			PQclear(res);
			return o;
		}
		PQclear(res);
	}
	return APPLIED;
}

enum outcome
batch_apply(PGconn *conn, const struct target *t, struct batch *b)
{
	enum outcome o;
	size_t i;

	/* a retry starts over: what the database refused may have been a symptom */
	for (i = 0; i < b->n; i++) {
		if (b->state[i] == LINE_REFUSED) {
			b->state[i] = LINE_OK;
			free(b->why[i]);
			b->why[i] = NULL;
		}
	}
	if ((o = command(conn, "BEGIN")) != APPLIED)
		return o;
	o = apply_range(conn, t, b, 0, b->n);
	if (o == APPLIED)
		o = dlq_rows(conn, t, b);
	if (o == APPLIED)
		o = command(conn, "COMMIT");
	else if (!pg_conn_lost(conn))
		command(conn, "ROLLBACK");
	return o;
}
