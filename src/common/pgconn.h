/* Connecting to PostgreSQL the way its client tools do. */
#ifndef PGCDC_PGCONN_H
#define PGCDC_PGCONN_H

#include <libpq-fe.h>

/*
 * Before connecting with conninfo (the -d argument, seen by every user
 * through ps): warn, once per process, when it holds a password; a malformed
 * one is logged (the pieces libpq would quote hidden) and returns -1.
 */
int pg_conninfo_check(const char *conninfo);

/*
 * Connect with conninfo (a keyword/value string or URI; NULL or "" leaves
 * everything to the PG* environment), checked by pg_conninfo_check first.
 * Returns NULL after logging the error.
 */
PGconn *pg_connect(const char *conninfo);

/* Run a command that returns no rows; logs and returns -1 on failure. */
int pg_command(PGconn *conn, const char *sql);

/* First line of the connection's last error message, for one-line diagnostics (per thread). */
const char *pg_errmsg(PGconn *conn);

/* True when the server connection is gone (as opposed to an SQL error). */
int pg_conn_lost(PGconn *conn);

/* name quoted as an SQL identifier, or s as a string literal, for conn; malloc'd. */
char *pg_quote_ident(PGconn *conn, const char *name);
char *pg_quote_literal(PGconn *conn, const char *s);

#endif
