/*
 * Schema events ("op":"s"): a source table's columns, their types and its
 * primary key, sent before the first change of the table and whenever they
 * change.  Without --create or --evolve they change nothing.  With --create a
 * missing warehouse table is created from one; with --evolve a column the
 * source gained is added and a changed type followed when PostgreSQL can
 * convert it.  The DDL runs in a transaction of its own before the rows that
 * follow the event; a change it cannot follow dead-letters the table's
 * events, with one clear error, and the rest of the stream goes on.
 *
 * Names are quoted; a type is pasted into the DDL only once PostgreSQL has
 * read it, alone, as a type name, and if it holds nothing but the characters
 * type names are made of.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "log.h"
#include "pgconn.h"
#include "jsonwalk.h"
#include "upsert.h"

#define MAX_COLUMNS 1600	/* PostgreSQL's own limit */

struct scol {
	char *name, *type;
};

/* What a schema event says of its table. */
struct sdef {
	struct scol *cols;
	int ncols;
	char **pk;
	int npk;
};

/* What an attempt at the DDL came to, beside its outcome. */
struct ddl {
	PGconn *conn;
	const struct options *opt;
	struct sink *s;
	const struct sdef *d;
	char *err;		/* the first change that could not be made */
	int changed;		/* the table was created or altered */
};

static void
sdef_free(struct sdef *d)
{
	int i;

	for (i = 0; i < d->ncols; i++) {
		free(d->cols[i].name);
		free(d->cols[i].type);
	}
	free(d->cols);
	for (i = 0; i < d->npk; i++)
		free(d->pk[i]);
	free(d->pk);
}

/* The columns: objects with a "name" and a "type", both strings. */
static const char *
parse_columns(const char *arr, size_t len, struct sdef *d)
{
	static const char *const names[2] = { "name", "type" };
	struct jiter it;
	const char *name, *val, *v[2];
	size_t nlen, vlen, vl[2];

	jw_open(&it, arr, len);
	while (jw_next(&it, &name, &nlen, &val, &vlen)) {
		struct scol *c;

		if (d->ncols == MAX_COLUMNS)
			return "not an event: a schema event with more than 1600 columns";
		if ((d->cols = realloc(d->cols, (d->ncols + 1) * sizeof *d->cols)) == NULL)
			die("out of memory");
		c = &d->cols[d->ncols];
		json_scan_fields(val, vlen, names, 2, v, vl);
		c->name = *val == '{' ? json_string_dup(v[0], vl[0]) : NULL;
		c->type = *val == '{' ? json_string_dup(v[1], vl[1]) : NULL;
		d->ncols++;
		if (c->name == NULL || c->type == NULL || *c->name == '\0')
			return "not an event: a column of a schema event needs a \"name\" and a \"type\"";
	}
	return d->ncols ? NULL : "not an event: a schema event with no columns";
}

static const char *
parse_key(const char *arr, size_t len, struct sdef *d)
{
	struct jiter it;
	const char *name, *val;
	size_t nlen, vlen;

	jw_open(&it, arr, len);
	while (jw_next(&it, &name, &nlen, &val, &vlen)) {
		if (d->npk == MAX_COLUMNS)
			return "not an event: a \"primary_key\" of more than 1600 columns";
		if ((d->pk = realloc(d->pk, (d->npk + 1) * sizeof *d->pk)) == NULL)
			die("out of memory");
		if ((d->pk[d->npk++] = json_string_dup(val, vlen)) == NULL)
			return "not an event: \"primary_key\" is not an array of column names";
	}
	return NULL;
}

/*
 * Only what format_type writes: names, quoted names, digits, and the
 * parentheses, commas, dots, brackets and spaces between them.  No quote,
 * semicolon, dash, slash or dollar: no string, statement or comment.
 */
static int
type_chars_ok(const char *type)
{
	const unsigned char *p;
	int quotes = 0;

	if (*type == '\0' || strlen(type) > 256)
		return 0;
	for (p = (const unsigned char *)type; *p; p++) {
		if (*p == '"')
			quotes++;
		else if (!isalnum(*p) && *p < 0x80 && !strchr("_ (),.[]", *p))
			return 0;
	}
	return quotes % 2 == 0;
}

/* Run sql (with up to one parameter); TRANSIENT, or FATAL with *msg the server's message. */
static enum outcome
run(PGconn *conn, const char *sql, const char *param, PGresult **out, char **msg)
{
	PGresult *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, &param, NULL, NULL, 0);
	enum outcome o;

	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK) {
		if (out)
			*out = res;
		else
			PQclear(res);
		return APPLIED;
	}
	o = pg_classify(conn, res);
	PQclear(res);
	if (o == TRANSIENT)
		return TRANSIENT;
	*msg = xstrdup(batch_error());
	return FATAL;
}

/* Keep the first refusal, as "what: message". */
static void
refusal(struct ddl *x, const char *what, const char *msg)
{
	if (x->err == NULL)
		x->err = strf("%s: %s", what, msg);
}

/*
 * Run sql under a savepoint: APPLIED, or REFUSED with the refusal kept in
 * x->err (the first one), the transaction going on; TRANSIENT or FATAL when
 * the transaction itself failed.  what is freed.
 */
static enum outcome
guarded(struct ddl *x, const char *sql, const char *param, char *what)
{
	enum outcome o;
	char *msg = NULL;

	if ((o = run(x->conn, "SAVEPOINT pgcdc_ddl", NULL, NULL, &msg)) == APPLIED) {
		if ((o = run(x->conn, sql, param, NULL, &msg)) == APPLIED)
			o = run(x->conn, "RELEASE SAVEPOINT pgcdc_ddl", NULL, NULL, &msg);
		else if (o == FATAL) {
			refusal(x, what, msg);
			free(msg);
			msg = NULL;
			o = run(x->conn, "ROLLBACK TO SAVEPOINT pgcdc_ddl", NULL, NULL, &msg);
			o = o == APPLIED ? REFUSED : o;
		}
	}
	if (o == FATAL)
		refusal(x, what, msg);
	free(msg);
	free(what);
	return o;
}

/* Does PostgreSQL read the column's type as a type name, alone?  APPLIED: yes; REFUSED: no. */
static enum outcome
type_check(struct ddl *x, const struct scol *c)
{
	if (!type_chars_ok(c->type)) {
		if (x->err == NULL)
			x->err = strf("table %s: column \"%s\" has an invalid type \"%s\"", sink_name(x->s),
			    c->name, c->type);
		return REFUSED;
	}
	return guarded(x, "SELECT $1::regtype", c->type,
	    strf("table %s: column \"%s\" has type \"%s\"", sink_name(x->s), c->name, c->type));
}

/* "schema" and "table", quoted, for DDL: from -t, as PostgreSQL reads it, when needed. */
static enum outcome
sink_parts(struct ddl *x, char **qs, char **qt)
{
	PGresult *res;
	char *msg = NULL;
	enum outcome o;

	if (x->s->schema == NULL) {
		o = run(x->conn, "SELECT CASE WHEN cardinality(p) > 1 THEN p[cardinality(p) - 1]"
		    " ELSE current_schema() END, p[cardinality(p)] FROM parse_ident($1) AS p",
		    x->s->qname, &res, &msg);
		if (o != APPLIED) {
			if (o == FATAL)
				refusal(x, sink_name(x->s), msg);
			free(msg);
			return o;
		}
		x->s->schema = xstrdup(PQgetvalue(res, 0, 0));
		x->s->table = xstrdup(PQgetvalue(res, 0, 1));
		PQclear(res);
	}
	*qs = pg_quote_ident(x->conn, x->s->schema);
	*qt = pg_quote_ident(x->conn, x->s->table);
	return APPLIED;
}

/* The CREATE TABLE statement, with the guard and delete columns and the key. */
static char *
create_sql(struct ddl *x, const char *qs, const char *qt)
{
	char *sql = NULL, *q;
	size_t len;
	FILE *f = open_memstream(&sql, &len);
	int i;

	if (f == NULL)
		die("out of memory");
	fprintf(f, "CREATE TABLE %s.%s (", qs, qt);
	for (i = 0; i < x->d->ncols; i++) {
		q = pg_quote_ident(x->conn, x->d->cols[i].name);
		fprintf(f, "%s %s, ", q, x->d->cols[i].type);
		free(q);
	}
	q = pg_quote_ident(x->conn, x->opt->pos_column);
	fprintf(f, "%s numeric(20,0) NOT NULL, last_cdc_ts timestamptz, ", q);
	free(q);
	if (x->opt->del == DELETE_SOFT)
		fputs("is_deleted boolean NOT NULL DEFAULT false, ", f);
	fputs("PRIMARY KEY (", f);
	for (i = 0; i < x->d->npk; i++) {
		q = pg_quote_ident(x->conn, x->d->pk[i]);
		fprintf(f, "%s%s", i ? ", " : "", q);
		free(q);
	}
	fputs("))", f);
	if (fclose(f) != 0)
		die("out of memory");
	return sql;
}

/* Run the DDL statement sql (freed), refused as "cannot create table NAME". */
static enum outcome
create_step(struct ddl *x, char *sql, const char *name)
{
	enum outcome o;

	log_debug("%s", sql);
	o = guarded(x, sql, NULL, strf("cannot create table %s", name));
	free(sql);
	return o;
}

/* --create: the table, its schema if need be, and the schema's tombstones table. */
static enum outcome
create_table(struct ddl *x)
{
	char *qs = NULL, *qt = NULL, *msg = NULL, *tomb;
	PGresult *res;
	enum outcome o = APPLIED;
	int i, missing;

	if (x->d->npk == 0) {
		x->err = strf("cannot create table %s: the schema event has no primary key", sink_name(x->s));
		return REFUSED;
	}
	for (i = 0; i < x->d->ncols && o == APPLIED; i++)
		o = type_check(x, &x->d->cols[i]);
	if (o != APPLIED || (o = sink_parts(x, &qs, &qt)) != APPLIED)
		goto out;
	/* CREATE SCHEMA IF NOT EXISTS would need the privilege to create one even when it exists */
	if ((o = run(x->conn, "SELECT FROM pg_namespace WHERE nspname = $1", x->s->schema, &res, &msg)) != APPLIED)
		goto out;
	missing = PQntuples(res) == 0;
	PQclear(res);
	if (missing && (o = create_step(x, strf("CREATE SCHEMA %s", qs), sink_name(x->s))) != APPLIED)
		goto out;
	if ((o = create_step(x, create_sql(x, qs, qt), sink_name(x->s))) != APPLIED)
		goto out;
	x->changed = 1;
	tomb = strf("%s.cdc_tombstones", x->s->schema);
	o = create_step(x, strf("CREATE TABLE IF NOT EXISTS %s.cdc_tombstones (tbl text NOT NULL,"
	    " key jsonb NOT NULL, pos numeric(20,0) NOT NULL, deleted_at timestamptz,"
	    " PRIMARY KEY (tbl, key))", qs), tomb);
	free(tomb);
out:
	if (o == FATAL && msg)
		refusal(x, sink_name(x->s), msg);
	free(msg);
	free(qs);
	free(qt);
	return o;
}

/* --evolve: one column of the source against the warehouse's (type NULL: it has none). */
static enum outcome
evolve_column(struct ddl *x, const char *qtable, const struct scol *c, const char *type)
{
	enum outcome o;
	char *q, *sql;

	if (type && strcmp(type, c->type) == 0)
		return APPLIED;
	if ((o = type_check(x, c)) != APPLIED)
		return o;
	q = pg_quote_ident(x->conn, c->name);
	if (type == NULL) {
		sql = strf("ALTER TABLE %s ADD COLUMN %s %s", qtable, q, c->type);
		o = guarded(x, sql, NULL, strf("table %s: cannot add column \"%s\" of type %s",
		    sink_name(x->s), c->name, c->type));
	} else {
		sql = strf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", qtable, q, c->type);
		o = guarded(x, sql, NULL, strf("table %s: cannot change column \"%s\" from %s to %s",
		    sink_name(x->s), c->name, type, c->type));
	}
	log_debug("%s", sql);
	free(sql);
	free(q);
	x->changed |= o == APPLIED;
	return o;
}

/* --evolve: the columns the source gained, and the types it changed; none it lost. */
static enum outcome
evolve_table(struct ddl *x)
{
	PGresult *res = NULL;
	char *qs = NULL, *qt = NULL, *qtable, *msg = NULL;
	enum outcome o;
	int i, r;

	if ((o = sink_parts(x, &qs, &qt)) != APPLIED)
		return o;
	qtable = strf("%s.%s", qs, qt);
	o = run(x->conn, "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
	    " WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped", x->s->qname, &res, &msg);
	for (i = 0; o != TRANSIENT && o != FATAL && i < x->d->ncols; i++) {
		const char *type = NULL;

		for (r = 0; r < PQntuples(res); r++)
			if (strcmp(PQgetvalue(res, r, 0), x->d->cols[i].name) == 0)
				type = PQgetvalue(res, r, 1);
		o = evolve_column(x, qtable, &x->d->cols[i], type);
	}
	PQclear(res);
	if (msg)
		refusal(x, sink_name(x->s), msg);
	free(msg);
	free(qtable);
	free(qs);
	free(qt);
	return o == REFUSED ? APPLIED : o;
}

/* One transaction of DDL for the schema event. */
static enum outcome
ddl_attempt(struct ddl *x)
{
	PGresult *res;
	char *msg = NULL;
	enum outcome o;
	int exists;

	/* one pg-upsert at a time looks at a table and changes it (sinks may share a topic) */
	if ((o = run(x->conn, "BEGIN", NULL, NULL, &msg)) != APPLIED ||
	    (o = run(x->conn, "SET LOCAL client_min_messages = warning", NULL, NULL, &msg)) != APPLIED ||
	    (o = run(x->conn, "SELECT pg_advisory_xact_lock(hashtext('pgcdc ddl'), hashtext($1))",
	    x->s->qname, NULL, &msg)) != APPLIED ||
	    (o = run(x->conn, "SELECT to_regclass($1) IS NOT NULL", x->s->qname, &res, &msg)) != APPLIED)
		goto out;
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!exists && x->opt->create)
		o = create_table(x);
	else if (exists && x->opt->evolve)
		o = evolve_table(x);
	if (o == REFUSED)
		o = APPLIED;	/* what could be done is kept, the refusal is in x->err */
	if (o == APPLIED)
		o = run(x->conn, "COMMIT", NULL, NULL, &msg);
out:
	if (o == FATAL && msg)
		refusal(x, sink_name(x->s), msg);
	if (o != APPLIED && !pg_conn_lost(x->conn))
		PQclear(PQexec(x->conn, "ROLLBACK"));
	free(msg);
	return o;
}

const char *
schema_event(struct router *r, struct sink *s, const struct scan *sc)
{
	struct backoff retry = BACKOFF_INIT;
	struct sdef d = { 0 };
	struct ddl x = { .opt = r->opt, .s = s, .d = &d };
	const char *why = NULL;
	char *wait = NULL;
	enum outcome o;

	if ((why = parse_columns(sc->v[F_COLUMNS], sc->vl[F_COLUMNS], &d)) != NULL ||
	    (why = parse_key(sc->v[F_PKEY], sc->vl[F_PKEY], &d)) != NULL ||
	    (!r->opt->create && !r->opt->evolve)) {
		sdef_free(&d);
		return why;
	}
	for (;;) {
		if (router_db(r, &retry, wait) < 0)
			break;
		x.conn = *r->conn;
		if ((o = ddl_attempt(&x)) != TRANSIENT)
			break;
		free(x.err);
		x.err = NULL;
		x.changed = 0;
		free(wait);
		wait = xstrdup(batch_error());
	}
	free(wait);
	sdef_free(&d);
	if (r->fatal) {
		log_error("second signal: giving up");
		free(x.err);
		return NULL;
	}
	free(s->broken);
	s->broken = NULL;
	if ((x.changed || s->state != SINK_READY) && sink_reload(r, s) != APPLIED)
		r->fatal = 1;
	if (x.err) {
		log_error("%s; its events are dead-lettered", x.err);
		s->broken = x.err;
	}
	return s->broken;
}
