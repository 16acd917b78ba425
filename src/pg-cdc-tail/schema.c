/*
 * --schema-events: the "s" event, a table's columns (name, format_type,
 * not null) in attnum order and its primary key in index order, written just
 * before the change it was emitted for, with that change's pos, txid and
 * ts_ms.  A schema is kept as the compact JSON object
 * {"columns":[...],"primary_key":[...]}; the event holds its members.
 * Both modes read it from the catalog with the queries below; trigger mode
 * also finds it in the log rows that cdc.sql's event trigger writes at each
 * ALTER TABLE (op 's', the schema of cdc.schema() in "after").
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "jsonwalk.h"
#include "log.h"
#include "pgconn.h"
#include "tail.h"

/* The primary key of table $1 in index order, never the replica identity. */
#define PRIMARY_KEY_SQL \
	"(SELECT coalesce(json_agg(p.attname ORDER BY k.o), '[]')" \
	"   FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, o)" \
	"   JOIN pg_attribute p ON p.attrelid = i.indrelid AND p.attnum = k.attnum" \
	"  WHERE i.indrelid = $1::oid AND i.indisprimary)"

/* Trigger mode and snapshots: every column of the table, as cdc.schema() has them. */
static const char catalog_sql[] =
    "SELECT json_build_object('columns', coalesce(json_agg(json_build_object('name', a.attname,"
    "         'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull)"
    "         ORDER BY a.attnum), '[]'), 'primary_key', " PRIMARY_KEY_SQL ")::text,"
    "       coalesce(json_agg(a.attname ORDER BY a.attnum), '[]')::text"
    "  FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped";

/* Logical mode: the columns of a Relation message ($2: [{"o","name","type","typmod"}]). */
static const char relation_sql[] =
    "SELECT json_build_object('columns', coalesce(json_agg(json_build_object('name', x.name,"
    "         'type', format_type(x.type, x.typmod), 'not_null', coalesce(a.attnotnull, false))"
    "         ORDER BY x.o), '[]'), 'primary_key', " PRIMARY_KEY_SQL ")::text, NULL"
    "  FROM json_to_recordset($2::json) AS x(o int, name text, type oid, typmod int)"
    "  LEFT JOIN pg_attribute a ON a.attrelid = $1::oid AND a.attname = x.name AND NOT a.attisdropped";

char *
json_compact_dup(const char *s, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (f == NULL)
		die("out of memory");
	json_put_compact(f, s, len);
	if (fclose(f) != 0)
		die("out of memory");
	return buf;
}

static int
schema_query(PGconn *conn, const char *sql, const char *oid, const char *cols,
    char **schema, char **names)
{
	const char *params[2] = { oid, cols };
	PGresult *res = PQexecParams(conn, sql, cols ? 2 : 1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		if (!pg_conn_lost(conn))
			log_error("cannot read the columns of table %s: %s", oid, pg_errmsg(conn));
		PQclear(res);
		return -1;
	}
	*schema = json_compact_dup(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
	if (names)
		*names = xstrdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

int
schema_read(PGconn *conn, const char *oid, char **schema, char **names)
{
	return schema_query(conn, catalog_sql, oid, NULL, schema, names);
}

int
schema_of_relation(PGconn *conn, const char *oid, const char *cols, char **schema)
{
	return schema_query(conn, relation_sql, oid, cols, schema, NULL);
}

char *
schema_row_names(const char *s, size_t len)
{
	struct jiter it;
	const char *name, *val;
	size_t nlen, vlen;
	char *names = NULL;
	size_t size;
	FILE *f;
	int n = 0;

	jw_open(&it, s, len);
	if (!it.object)
		return NULL;
	if ((f = open_memstream(&names, &size)) == NULL)
		die("out of memory");
	fputc('[', f);
	while (jw_next(&it, &name, &nlen, &val, &vlen)) {
		fputs(n++ ? ", " : "", f);
		fwrite(name, 1, nlen, f);
	}
	fputc(']', f);
	if (fclose(f) != 0)
		die("out of memory");
	/* json_agg of no names is NULL, not [] */
	if (n == 0) {
		free(names);
		return NULL;
	}
	return names;
}

int
schema_row_names_are(const char *names, const char *s, size_t len)
{
	struct jiter want, row;
	const char *name, *val, *wname, *wval;
	size_t nlen, vlen, wnlen, wvlen;

	jw_open(&want, names, strlen(names));
	jw_open(&row, s, len);
	if (!row.object)
		return 0;
	while (jw_next(&row, &name, &nlen, &val, &vlen))
		if (!jw_next(&want, &wname, &wnlen, &wval, &wvlen) || wvlen != nlen ||
		    memcmp(wval, name, nlen) != 0)
			return 0;
	return !jw_next(&want, &wname, &wnlen, &wval, &wvlen);
}

/* Skip a "not_null" member at s, if there is one: it is no part of the comparison. */
static const char *
skip_not_null(const char *s)
{
	static const char *const members[] = { ",\"not_null\":true", ",\"not_null\":false" };
	size_t i, len;

	/* in compact JSON an unescaped quote only ever starts or ends a string */
	for (i = 0; i < 2; i++) {
		len = strlen(members[i]);
		if (strncmp(s, members[i], len) == 0)
			return s + len;
	}
	return s;
}

int
schema_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	/* called for every change: the same text is the common case */
	if (strcmp(a, b) == 0)
		return 0;
	for (;;) {
		if (*a == ',')
			a = skip_not_null(a);
		if (*b == ',')
			b = skip_not_null(b);
		if (*a != *b)
			return 1;
		if (*a == '\0')
			return 0;
		a++;
		b++;
	}
}

void
schema_put(FILE *out, const char *prefix, const char *schema, const char *pos, const char *txid,
    const char *ts_ms)
{
	size_t len = strlen(schema);

	fputs("{\"op\":\"s\"", out);
	fputs(prefix, out);
	fputs("null,\"before\":null,\"after\":null,", out);
	/* the members of {"columns":[...],"primary_key":[...]} */
	fwrite(schema + 1, 1, len - 2, out);
	fprintf(out, ",\"pos\":%s,\"txid\":%s,\"ts_ms\":%s}\n", pos, txid, ts_ms);
}

int
is_pattern(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

int
pattern_match(const char *const *pats, int n, const char *name)
{
	int i;

	for (i = 0; i < n; i++)
		if (is_pattern(pats[i]) && fnmatch(pats[i], name, 0) == 0)
			return 1;
	return 0;
}
