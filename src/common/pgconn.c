#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"

PGconn *
pg_connect(const char *conninfo)
{
	const char *keys[] = { "dbname", "fallback_application_name", NULL };
	const char *vals[] = { conninfo, progname, NULL };
	PGconn *conn;

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		log_error("out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		log_error("connection failed: %s", pg_errmsg(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

int
pg_command(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		log_error("query failed: %s", pg_errmsg(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

const char *
pg_errmsg(PGconn *conn)
{
	static const char *const severities[] = { "ERROR:  ", "FATAL:  ", "PANIC:  " };
	static _Thread_local char buf[512];
	const char *msg = PQerrorMessage(conn);
	size_t n, i;

	/* keep the first line, without the server's severity prefix */
	for (i = 0; i < sizeof severities / sizeof *severities; i++)
		if (strncmp(msg, severities[i], strlen(severities[i])) == 0)
			msg += strlen(severities[i]);
	n = strcspn(msg, "\n");
	if (n >= sizeof buf)
		n = sizeof buf - 1;
	memcpy(buf, msg, n);
	buf[n] = '\0';
	return buf;
}

int
pg_conn_lost(PGconn *conn)
{
	return PQstatus(conn) != CONNECTION_OK;
}

/* A copy of what libpq escaped, in memory of our own. */
static char *
escaped(char *q)
{
	char *d;

	if (q == NULL)
		die("out of memory");
	d = xstrdup(q);
	PQfreemem(q);
	return d;
}

char *
pg_quote_ident(PGconn *conn, const char *name)
{
	return escaped(PQescapeIdentifier(conn, name, strlen(name)));
}

char *
pg_quote_literal(PGconn *conn, const char *s)
{
	return escaped(PQescapeLiteral(conn, s, strlen(s)));
}
