#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"

/* libpq takes a "dbname" apart only in these forms; anything else is a database name. */
static int
is_conninfo(const char *s)
{
	return strchr(s, '=') != NULL || strncmp(s, "postgresql://", 13) == 0 ||
	    strncmp(s, "postgres://", 11) == 0;
}

/* The quote closing the one at open: libpq writes "%s" then a space or the end. */
static const char *
closing_quote(const char *open)
{
	const char *q;

	for (q = open + 1; (q = strchr(q, '"')) != NULL; q++)
		if (q[1] == ' ' || q[1] == '\n' || q[1] == '\0')
			return q;
	return NULL;
}

/*
 * libpq's complaint about a malformed conninfo quotes pieces of it, up to the
 * whole URI with its password: those are shown as "...", but for an option's
 * name and a single character.
 */
static void
log_malformed(const char *err)
{
	char *msg = malloc(2 * strlen(err) + 1), *out = msg;	/* "ab" becomes "..." */
	const char *p, *close;

	if (msg == NULL)
		die("out of memory");

	for (p = err; *p != '\0' && *p != '\n'; p++) {
		*out++ = *p;
		if (*p != '"')
			continue;
		if ((close = closing_quote(p)) == NULL) {
			out = stpcpy(out, "...");
			break;
		}
		/* "=" or ":" says where, not what; an option's name is no secret */
		if (close - p > 2 && !(p - err >= 7 && strncmp(p - 7, "option ", 7) == 0)) {
			out = stpcpy(out, "...\"");
		} else {
			memcpy(out, p + 1, (size_t)(close - p));
			out += close - p;
		}
		p = close;
	}
	*out = '\0';
	log_error("connection failed: %s", msg);
	free(msg);
}

int
pg_conninfo_check(const char *conninfo)
{
	static atomic_flag warned = ATOMIC_FLAG_INIT;
	PQconninfoOption *opts, *o;
	char *err = NULL;

	if (conninfo == NULL || !is_conninfo(conninfo))
		return 0;
	if ((opts = PQconninfoParse(conninfo, &err)) == NULL) {
		if (err == NULL)
			die("out of memory");
		log_malformed(err);
		PQfreemem(err);
		return -1;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && *o->val != '\0' &&
		    !atomic_flag_test_and_set(&warned))
			log_warning("a password on the command line is visible to other users (ps);"
			    " use PGPASSWORD, ~/.pgpass or a service file");
	PQconninfoFree(opts);
	return 0;
}

PGconn *
pg_connect(const char *conninfo)
{
	const char *keys[] = { "dbname", "fallback_application_name", NULL };
	const char *vals[] = { conninfo, progname, NULL };
	PGconn *conn;

	if (pg_conninfo_check(conninfo) < 0)
		return NULL;
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
