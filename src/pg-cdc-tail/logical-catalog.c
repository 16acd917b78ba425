/*
 * pg-cdc-tail logical mode: the publication and the catalog, read on the
 * replication connection before streaming.  The publication must hold the
 * tables asked for (--create-slot adds them) and publish every kind of
 * change; each published table's primary key names the key of its events,
 * and domains are written as their base types are.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "logical.h"
#include "pgconn.h"


/* A simple query (a walsender takes no extended protocol); NULL after logging. */
PGresult *
query(PGconn *conn, const char *sql, ExecStatusType want)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != want) {
		if (!pg_conn_lost(conn))
			log_error("query failed: %s", pg_errmsg(conn));
		PQclear(res);
		return NULL;
	}
	return res;
}

/* sql with %s replaced by the literal lit, quoted for this connection. */
PGresult *
query_lit(PGconn *conn, const char *fmt, const char *lit, ExecStatusType want)
{
	char *q = PQescapeLiteral(conn, lit, strlen(lit));
	size_t len;
	char *sql;
	PGresult *res;

	if (q == NULL)
		die("out of memory");
	len = strlen(fmt) + strlen(q) + 1;
	sql = xcalloc(len, 1);
	snprintf(sql, len, fmt, q);
	PQfreemem(q);
	res = query(conn, sql, want);
	free(sql);
	return res;
}

static int
publication_exists(struct logical *s, int *exists)
{
	PGresult *res = query_lit(s->conn,
	    "SELECT count(*) FROM pg_publication WHERE pubname = %s", s->opt->publication,
	    PGRES_TUPLES_OK);

	if (res == NULL)
		return -1;
	*exists = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	return 0;
}

/*
 * --create-slot: make sure the publication exists and holds every -t table.
 * Without it the publication must exist.
 */
int
ensure_publication(struct logical *s)
{
	char *pub = pg_quote_ident(s->conn, s->opt->publication);
	char *publit = pg_quote_literal(s->conn, s->opt->publication);
	char sql[2048];
	int exists, i, n, rc = -1;
	PGresult *res;

	if (publication_exists(s, &exists) < 0)
		goto out;
	if (!s->opt->create_slot) {
		if (!exists)
			log_error("publication \"%s\" does not exist (use --create-slot, or CREATE PUBLICATION)",
			    s->opt->publication);
		rc = exists ? 0 : -1;
		goto out;
	}
	for (i = n = 0; i < s->opt->ntables; i++)
		n += !is_pattern(s->opt->tables[i]);
	if (!exists && n == 0) {
		log_error("publication \"%s\" does not exist, and without -t there is no table to put in it",
		    s->opt->publication);
		goto out;
	}
	for (i = 0; i < s->opt->ntables; i++) {
		char *tab, *rel;

		if (is_pattern(s->opt->tables[i]))
			continue;	/* a pattern takes the tables published, adds none */
		tab = pg_quote_literal(s->conn, s->opt->tables[i]);
		snprintf(sql, sizeof sql,
		    "SELECT c.oid::regclass::text, EXISTS (SELECT FROM pg_publication_tables pt"
		    "  WHERE pt.pubname = %s AND pt.schemaname = n.nspname AND pt.tablename = c.relname)"
		    "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
		    " WHERE c.oid = to_regclass(%s)", publit, tab);
		free(tab);
		if ((res = query(s->conn, sql, PGRES_TUPLES_OK)) == NULL)
			goto out;
		if (PQntuples(res) == 0) {
			log_error("table \"%s\" does not exist", s->opt->tables[i]);
			PQclear(res);
			goto out;
		}
		if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
			PQclear(res);
			continue;
		}
		rel = xstrdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		snprintf(sql, sizeof sql, exists ? "ALTER PUBLICATION %s ADD TABLE %s" :
		    "CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert, update, delete, truncate')",
		    pub, rel);
		free(rel);
		if ((res = query(s->conn, sql, PGRES_COMMAND_OK)) == NULL)
			goto out;
		PQclear(res);
		log_info("%s", sql);
		exists = 1;
	}
	rc = 0;
out:
	free(pub);
	free(publit);
	return rc;
}

/*
 * A publication that leaves out a kind of change (a TRUNCATE, say) loses
 * those changes silently: --create-slot makes it publish all of them; without
 * it, a warning names what is left out.
 */
int
publish_all(struct logical *s)
{
	PGresult *res = query_lit(s->conn,
	    "SELECT concat_ws(', ', CASE WHEN NOT pubinsert THEN 'insert' END,"
	    "       CASE WHEN NOT pubupdate THEN 'update' END, CASE WHEN NOT pubdelete THEN 'delete' END,"
	    "       CASE WHEN NOT pubtruncate THEN 'truncate' END)"
	    "  FROM pg_publication WHERE pubname = %s", s->opt->publication, PGRES_TUPLES_OK);
	char *pub, sql[512];

	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0 || *PQgetvalue(res, 0, 0) == '\0') {
		PQclear(res);
		return 0;
	}
	if (!s->opt->create_slot) {
		log_warning("publication \"%s\" does not publish %s: such changes are not captured"
		    " (use --create-slot to publish them)", s->opt->publication, PQgetvalue(res, 0, 0));
		PQclear(res);
		return 0;
	}
	PQclear(res);
	pub = pg_quote_ident(s->conn, s->opt->publication);
	snprintf(sql, sizeof sql, "ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate')", pub);
	free(pub);
	if ((res = query(s->conn, sql, PGRES_COMMAND_OK)) == NULL)
		return -1;
	PQclear(res);
	log_info("%s", sql);
	return 0;
}


int
wanted(const struct logical *s, uint32_t oid, const char *name)
{
	int i;

	if (s->opt->ntables == 0)
		return 1;
	for (i = 0; i < s->nwanted; i++)
		if (s->wanted[i] == oid)
			return 1;
	return pattern_match(s->opt->tables, s->opt->ntables, name);
}

/* The published tables, each with the query a snapshot reads it with. */
static int
load_published(struct logical *s)
{
	PGresult *res;
	int i;

	res = query_lit(s->conn,
	    "SELECT c.oid, n.nspname || '.' || c.relname, NULL,"
	    "       (SELECT format('SELECT json_build_object(%%s)::text, row_to_json(t.*)::text FROM %%s AS t',"
	    "                      string_agg(format('%%L, t.%%I', a.attname, a.attname), ', ' ORDER BY k.o), c.oid::regclass)"
	    "          FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, o)"
	    "          JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum"
	    "         WHERE x.indrelid = c.oid AND x.indisprimary)"
	    "  FROM pg_publication_tables pt"
	    "  JOIN pg_namespace n ON n.nspname = pt.schemaname"
	    "  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename"
	    " WHERE pt.pubname = %s", s->opt->publication, PGRES_TUPLES_OK);
	if (res == NULL)
		return -1;
	s->ninfo = PQntuples(res);
	s->info = xcalloc(s->ninfo, sizeof *s->info);
	for (i = 0; i < s->ninfo; i++) {
		struct table_info *t = &s->info[i];

		t->oid = strtoul(PQgetvalue(res, i, 0), NULL, 10);
		t->name = xstrdup(PQgetvalue(res, i, 1));
		if (!PQgetisnull(res, i, 3))
			t->snapshot_sql = xstrdup(PQgetvalue(res, i, 3));
	}
	PQclear(res);
	return 0;
}

/* The primary key columns of the published tables, in key order. */
static int
load_keys(struct logical *s)
{
	PGresult *res;
	int i, j;

	res = query(s->conn,
	    "SELECT x.indrelid, a.attname FROM pg_index x"
	    "       CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, o)"
	    "  JOIN pg_attribute a ON a.attnum = k.attnum"
	    " WHERE x.indisprimary AND a.attrelid = x.indrelid"
	    "   AND x.indrelid IN (SELECT (quote_ident(schemaname) || '.' || quote_ident(tablename))::regclass"
	    "                        FROM pg_publication_tables)"
	    " ORDER BY x.indrelid, k.o", PGRES_TUPLES_OK);
	if (res == NULL)
		return -1;
	for (i = 0; i < s->ninfo; i++)
		s->info[i].pk = xcalloc(PQntuples(res), sizeof *s->info[i].pk);
	for (i = 0; i < PQntuples(res); i++) {
		uint32_t oid = strtoul(PQgetvalue(res, i, 0), NULL, 10);

		for (j = 0; j < s->ninfo; j++)
			if (s->info[j].oid == oid)
				s->info[j].pk[s->info[j].npk++] = xstrdup(PQgetvalue(res, i, 1));
	}
	PQclear(res);
	return 0;
}

/* The -t tables that are names, each of which must be published; patterns match later. */
static int
load_wanted(struct logical *s)
{
	PGresult *res;
	uint32_t oid;
	int i, j;

	s->wanted = xcalloc(s->opt->ntables, sizeof *s->wanted);
	for (i = 0; i < s->opt->ntables; i++) {
		if (is_pattern(s->opt->tables[i]))
			continue;
		res = query_lit(s->conn, "SELECT to_regclass(%s)::oid", s->opt->tables[i], PGRES_TUPLES_OK);
		if (res == NULL)
			return -1;
		if (PQgetisnull(res, 0, 0)) {
			log_error("table \"%s\" does not exist", s->opt->tables[i]);
			PQclear(res);
			return -1;
		}
		oid = strtoul(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		for (j = 0; j < s->ninfo && s->info[j].oid != oid; j++)
			;
		if (j == s->ninfo) {
			log_error("table \"%s\" is not in publication \"%s\" (use --create-slot to add it)",
			    s->opt->tables[i], s->opt->publication);
			return -1;
		}
		s->wanted[s->nwanted++] = oid;
	}
	for (i = 0; i < s->ninfo; i++) {
		if (s->info[i].npk == 0 && wanted(s, s->info[i].oid, s->info[i].name))
			log_warning("table \"%s\" has no primary key: its replica identity is its key",
			    s->info[i].name);
	}
	return 0;
}

/* Domains, with the base type each is written as. */
static int
load_domains(struct logical *s)
{
	PGresult *res;
	int i;

	res = query(s->conn,
	    "WITH RECURSIVE d(oid, base) AS ("
	    "  SELECT oid, typbasetype FROM pg_type WHERE typtype = 'd'"
	    "  UNION ALL SELECT d.oid, t.typbasetype FROM d JOIN pg_type t ON t.oid = d.base AND t.typtype = 'd')"
	    " SELECT d.oid, d.base FROM d JOIN pg_type t ON t.oid = d.base AND t.typtype <> 'd'",
	    PGRES_TUPLES_OK);
	if (res == NULL)
		return -1;
	s->ndomains = PQntuples(res);
	s->domains = xcalloc(2 * s->ndomains, sizeof *s->domains);
	for (i = 0; i < s->ndomains; i++) {
		s->domains[2 * i] = strtoul(PQgetvalue(res, i, 0), NULL, 10);
		s->domains[2 * i + 1] = strtoul(PQgetvalue(res, i, 1), NULL, 10);
	}
	PQclear(res);
	return 0;
}

int
load_tables(struct logical *s)
{
	if (load_published(s) < 0 || load_keys(s) < 0 || load_wanted(s) < 0 || load_domains(s) < 0)
		return -1;
	return 0;
}

enum kind
type_kind(const struct logical *s, uint32_t type)
{
	int i;

	for (i = 0; i < s->ndomains; i++)
		if (s->domains[2 * i] == type)
			type = s->domains[2 * i + 1];
	switch (type) {
	case 16: return K_BOOL;
	case 20: case 21: case 23: case 26: case 700: case 701: case 1700: return K_NUMBER;
	case 114: return K_JSON;
	case 3802: return K_JSONB;
	case 1114: case 1184: return K_TIMESTAMP;
	default: return K_TEXT;
	}
}
