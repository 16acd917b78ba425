/*
 * Applying a batch: the valid lines go to the database as one JSON array and
 * one statement, inside a savepoint.  When the database refuses the batch for
 * a data reason, it is split in halves until each refused row stands alone;
 * those are dead-lettered and every other row still commits.  Transient
 * failures (connection lost, deadlock, serialization) abort the attempt so
 * the caller retries the whole batch: the guard column makes a replay a no-op.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "log.h"
#include "pgconn.h"
#include "upsert.h"

enum { F_OP, F_POS, F_KEY, F_AFTER, F_BEFORE, F_TS, NFIELDS };

/* Why a line is not an event the target can take, or NULL. */
const char *
event_check(const char *line, size_t len, const struct target *t)
{
	static const char *const fields[NFIELDS] = { "op", "pos", "key", "after", "before", "ts_ms" };
	const char *v[NFIELDS], *kv[64], *why;
	size_t vl[NFIELDS], kl[64], i;
	static __thread char buf[160];

	if ((why = json_scan_fields(line, len, fields, NFIELDS, v, vl)) != NULL)
		return why;
	while (len > 0 && (*line == ' ' || *line == '\t' || *line == '\r'))
		line++, len--;
	if (*line != '{')
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
	if (v[F_KEY] == NULL || v[F_KEY][0] != '{')
		return "missing key: no \"key\" object";
	if (v[F_OP][1] != 'd' && (v[F_AFTER] == NULL || v[F_AFTER][0] != '{'))
		return "not an event: no \"after\" row";
	if ((size_t)t->nkeys > sizeof kv / sizeof *kv)
		return "too many key columns";
	json_scan_fields(v[F_KEY], vl[F_KEY], (const char *const *)t->keys, t->nkeys, kv, kl);
	for (i = 0; i < (size_t)t->nkeys; i++) {
		if (kv[i] == NULL || (kl[i] == 4 && memcmp(kv[i], "null", 4) == 0)) {
			snprintf(buf, sizeof buf, "missing key: no value for key column \"%.100s\"", t->keys[i]);
			return buf;
		}
	}
	return NULL;
}

/* SQLSTATE classes: what a failure means for the batch. */
static enum outcome
classify(PGconn *conn, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

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

/* The JSON array of the valid, not yet refused lines in [lo, hi); NULL if none. */
static char *
array_of(const struct batch *b, size_t lo, size_t hi, size_t *count)
{
	size_t i, size = 2;
	char *a, *p;

	*count = 0;
	for (i = lo; i < hi; i++)
		if (!b->reject[i] && !b->bad[i])
			size += b->len[i] + 1, (*count)++;
	if (*count == 0)
		return NULL;
	if ((a = malloc(size + 1)) == NULL)
		die("out of memory");
	p = a;
	*p++ = '[';
	for (i = lo; i < hi; i++) {
		if (b->reject[i] || b->bad[i])
			continue;
		if (p > a + 1)
			*p++ = ',';
		memcpy(p, b->text + b->off[i], b->len[i]);
		p += b->len[i];
	}
	*p++ = ']';
	*p = '\0';
	return a;
}

/* Apply lines [lo, hi) under a savepoint, splitting on data errors. */
static enum outcome
apply_range(PGconn *conn, const struct target *t, struct batch *b, size_t lo, size_t hi)
{
	const char *params[1];
	PGresult *res;
	enum outcome o;
	size_t count, i;
	char *array = array_of(b, lo, hi, &count);

	if (array == NULL)
		return APPLIED;
	if ((o = command(conn, "SAVEPOINT pgcdc_batch")) != APPLIED) {
		free(array);
		return o;
	}
	params[0] = array;
	res = PQexecParams(conn, t->apply_sql, 1, NULL, params, NULL, NULL, 0);
	free(array);
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
	if ((o = command(conn, "ROLLBACK TO SAVEPOINT pgcdc_batch")) != APPLIED) {
		PQclear(res);
		return o;
	}
	if (count == 1) {
		for (i = lo; i < hi; i++) {
			if (!b->reject[i] && !b->bad[i]) {
				b->bad[i] = 1;
				if ((b->why[i] = strdup(pg_errmsg(conn))) == NULL)
					die("out of memory");
			}
		}
		PQclear(res);
		return APPLIED;
	}
	PQclear(res);
	log_debug("batch of %zu refused; splitting", count);
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
		const char *err = b->reject[i] ? b->reject[i] : b->why[i];
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

	for (i = 0; i < b->n; i++) {
		b->bad[i] = 0;
		free(b->why[i]);
		b->why[i] = NULL;
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
