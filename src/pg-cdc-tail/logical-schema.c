/*
 * pg-cdc-tail logical mode: what the stream needs from the catalog while it
 * runs, over a second, ordinary connection (a walsender in COPY takes no
 * query): the primary key of a table that joined the publication after the
 * start, and with --schema-events each Relation message's schema, its types
 * written by format_type and its key taken from pg_index.  A table's schema
 * event goes out before its first change in the run and before the first
 * change after pgoutput describes it differently.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "log.h"
#include "logical.h"
#include "pgconn.h"

PGconn *
catalog_conn(struct logical *s)
{
	if (s->catalog && PQstatus(s->catalog) == CONNECTION_OK)
		return s->catalog;
	PQfinish(s->catalog);
	s->catalog = pg_connect(s->opt->conninfo);
	return s->catalog;
}

/* The schema last emitted for table oid, to be replaced by the caller; grown as needed. */
static char **
emitted_of(struct logical *s, uint32_t oid)
{
	int i;

	for (i = 0; i < s->nseen; i++)
		if (s->seen[i].oid == oid)
			return &s->seen[i].emitted;
	s->seen = realloc(s->seen, (s->nseen + 1) * sizeof *s->seen);
	if (s->seen == NULL)
		die("out of memory");
	s->seen[s->nseen].oid = oid;
	s->seen[s->nseen].emitted = NULL;
	return &s->seen[s->nseen++].emitted;
}

void
schema_emitted(struct logical *s, uint32_t oid, char *schema)
{
	char **e = emitted_of(s, oid);

	free(*e);
	*e = schema;
}

/* A table that was not published at start: its primary key from the catalog. */
static int
load_info(struct logical *s, uint32_t oid, const char *name)
{
	char oidtext[16];
	const char *params[1] = { oidtext };
	struct table_info *ti;
	PGconn *conn;
	PGresult *res;
	int i;

	if ((conn = catalog_conn(s)) == NULL)
		return -1;
	snprintf(oidtext, sizeof oidtext, "%" PRIu32, oid);
	res = PQexecParams(conn,
	    "SELECT a.attname FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, o)"
	    "  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum"
	    " WHERE x.indrelid = $1::oid AND x.indisprimary ORDER BY k.o", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warning("cannot read the primary key of \"%s\": %s", name, pg_errmsg(conn));
		PQclear(res);
		return -1;
	}
	s->info = realloc(s->info, (s->ninfo + 1) * sizeof *s->info);
	if (s->info == NULL)
		die("out of memory");
	ti = &s->info[s->ninfo++];
	memset(ti, 0, sizeof *ti);
	ti->oid = oid;
	ti->name = xstrdup(name);
	ti->pk = xcalloc(PQntuples(res), sizeof *ti->pk);
	for (i = 0; i < PQntuples(res); i++)
		ti->pk[ti->npk++] = xstrdup(PQgetvalue(res, i, 0));
	PQclear(res);
	if (ti->npk == 0)
		log_warning("table \"%s\" has no primary key: its replica identity is its key", name);
	else
		log_info("table \"%s\" joined the publication", name);
	return 0;
}

const struct table_info *
info_of(struct logical *s, uint32_t oid, const char *name)
{
	int i;

	for (i = 0; i < s->ninfo; i++)
		if (s->info[i].oid == oid)
			return &s->info[i];
	if (load_info(s, oid, name) < 0)
		return NULL;
	return &s->info[s->ninfo - 1];
}

/* The relation's columns as relation_sql in schema.c takes them. */
static char *
columns_json(const struct relation *rel)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int i;

	if (f == NULL)
		die("out of memory");
	fputc('[', f);
	for (i = 0; i < rel->ncols; i++) {
		fprintf(f, "%s{\"o\":%d,\"name\":", i ? "," : "", i);
		json_put_string(f, rel->cols[i].name, strlen(rel->cols[i].name));
		fprintf(f, ",\"type\":%" PRIu32 ",\"typmod\":%" PRId32 "}", rel->cols[i].type,
		    rel->cols[i].typmod);
	}
	fputc(']', f);
	if (fclose(f) != 0)
		die("out of memory");
	return buf;
}

int
relation_schema(struct logical *s, struct relation *rel)
{
	char oidtext[16], *cols;
	PGconn *conn;
	int rc;

	if ((conn = catalog_conn(s)) == NULL)
		return -1;
	snprintf(oidtext, sizeof oidtext, "%" PRIu32, rel->oid);
	cols = columns_json(rel);
	rc = schema_of_relation(conn, oidtext, cols, &rel->schema);
	free(cols);
	return rc;
}

void
schema_before(struct logical *s, const struct relation *rel, uint64_t lsn)
{
	char **emitted, pos[24], txid[16], ts[24];

	if (rel->schema == NULL)
		return;
	emitted = emitted_of(s, rel->oid);
	if (*emitted && !schema_differs(rel->schema, *emitted))
		return;
	snprintf(pos, sizeof pos, "%" PRIu64, lsn);
	snprintf(txid, sizeof txid, "%" PRIu32, s->xid);
	snprintf(ts, sizeof ts, "%" PRId64, s->ts_ms);
	schema_put(s->e.out, rel->prefix, rel->schema, pos, txid, ts);
	s->e.lines++;
	free(*emitted);
	*emitted = xstrdup(rel->schema);
}
