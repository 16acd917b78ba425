/*
 * pg-cdc-tail logical mode: the replication connection and the slot.  The
 * first connection also prepares the publication, the catalog and the slot
 * (and takes the --snapshot); every connection then starts streaming from
 * the slot's confirmed position.  A slot still held by a predecessor that has
 * not quite gone (SQLSTATE 55006, object in use) is waited for.
 */
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "logical.h"
#include "pgconn.h"
#include "sig.h"

/* ERRCODE_OBJECT_IN_USE: START_REPLICATION on a slot another connection streams from */
#define SQLSTATE_OBJECT_IN_USE "55006"

static PGconn *
connect_replication(const struct options *o)
{
	const char *keys[] = { "dbname", "replication", "fallback_application_name", NULL };
	const char *vals[] = { o->conninfo, "database", progname, NULL };
	PGconn *conn;
	PGresult *res;

	if (pg_conninfo_check(o->conninfo) < 0)
		return NULL;
	if ((conn = PQconnectdbParams(keys, vals, 1)) == NULL)
		die("out of memory");
	if (PQstatus(conn) != CONNECTION_OK) {
		log_error("connection failed: %s", pg_errmsg(conn));
		PQfinish(conn);
		return NULL;
	}
	/* values are rendered by the server's output functions under these settings */
	res = query(conn, "SET DateStyle = ISO; SET TimeZone = UTC; SET IntervalStyle = postgres;"
	    " SET extra_float_digits = 1; SET bytea_output = hex", PGRES_COMMAND_OK);
	if (res == NULL) {
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

/* Does the slot exist (1) or not (0); -1 after an error, also when it is not ours to use. */
static int
slot_exists(struct logical *s)
{
	PGresult *res = query_lit(s->conn,
	    "SELECT plugin, slot_type, database = current_database() FROM pg_replication_slots"
	    " WHERE slot_name = %s", s->opt->slot, PGRES_TUPLES_OK);
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n > 0 && (strcmp(PQgetvalue(res, 0, 1), "logical") != 0 ||
	    strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0 || strcmp(PQgetvalue(res, 0, 2), "t") != 0)) {
		log_error("replication slot \"%s\" is not a pgoutput slot of database \"%s\"",
		    s->opt->slot, PQdb(s->conn));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return n > 0;
}

/*
 * Create the slot; with --snapshot, export its snapshot (valid until the next
 * command on this connection) into *snapshot.  0, or -1 after an error.
 */
static int
create_slot(struct logical *s, char **snapshot)
{
	char *slot = pg_quote_ident(s->conn, s->opt->slot);
	char sql[512];
	PGresult *res;

	snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT '%s')",
	    slot, s->opt->snapshot ? "export" : "nothing");
	free(slot);
	res = query(s->conn, sql, PGRES_TUPLES_OK);
	if (res == NULL)
		return -1;
	log_info("created replication slot \"%s\" at %s", s->opt->slot, PQgetvalue(res, 0, 1));
	if (s->opt->snapshot && !PQgetisnull(res, 0, 2))
		*snapshot = xstrdup(PQgetvalue(res, 0, 2));
	PQclear(res);
	return 0;
}

int
logical_drop_slot(const struct options *o)
{
	struct logical s = { .opt = (struct options *)o };
	char *slot, sql[512];
	PGresult *res;
	int n;

	if ((s.conn = connect_replication(o)) == NULL)
		return -1;
	n = slot_exists(&s);
	if (n == 1) {
		slot = pg_quote_ident(s.conn, o->slot);
		snprintf(sql, sizeof sql, "DROP_REPLICATION_SLOT %s WAIT", slot);
		free(slot);
		res = query(s.conn, sql, PGRES_COMMAND_OK);
		if (res == NULL)
			n = -1;
		else
			log_info("dropped replication slot \"%s\"", o->slot);
		PQclear(res);
	} else if (n == 0) {
		log_info("replication slot \"%s\" does not exist", o->slot);
	}
	PQfinish(s.conn);
	return n < 0 ? -1 : 0;
}

static long
sender_timeout(struct logical *s)
{
	PGresult *res = query(s->conn,
	    "SELECT setting::int FROM pg_settings WHERE name = 'wal_sender_timeout'", PGRES_TUPLES_OK);
	long ms = 60000;

	if (res && PQntuples(res) == 1)
		ms = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return ms;
}

/*
 * For the reports (logical-report.c), until the stream tells more: the
 * server's WAL end and the slot's confirmed LSN as streaming starts.
 */
static int
slot_progress(struct logical *s)
{
	PGresult *res = query_lit(s->conn,
	    "SELECT pg_current_wal_lsn(), confirmed_flush_lsn FROM pg_replication_slots"
	    " WHERE slot_name = %s", s->opt->slot, PGRES_TUPLES_OK);

	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		s->start_end = lsn_parse(PQgetvalue(res, 0, 0));
		s->start_confirmed = lsn_parse(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return 0;
}

/*
 * On each connection: status updates well inside the server's
 * wal_sender_timeout; without -f, the end of what is committed at start
 * (flushed to disk or not, under synchronous_commit=off) is where to stop.
 */
static int
stream_limits(struct logical *s)
{
	PGresult *res;

	if (slot_progress(s) < 0)
		return -1;
	if (s->status_ms == 0) {
		long t = sender_timeout(s);

		s->status_ms = t > 0 && t / 3 < 10000 ? t / 3 : 10000;
	}
	if (s->opt->follow || s->stop_at != 0)
		return 0;
	if ((res = query(s->conn, "SELECT pg_current_wal_insert_lsn()", PGRES_TUPLES_OK)) == NULL)
		return -1;
	s->stop_at = lsn_parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* The first connection's work: the publication, the catalog, the slot, and --snapshot. */
static int
prepare(struct logical *s)
{
	char *snapshot = NULL;
	int n, rc;

	if (ensure_publication(s) < 0 || publish_all(s) < 0 || load_tables(s) < 0)
		return -1;
	if ((n = slot_exists(s)) < 0)
		return -1;
	if (n == 0 && !s->opt->create_slot) {
		log_error("replication slot \"%s\" does not exist (use --create-slot)", s->opt->slot);
		return -1;
	}
	if (n == 0 && create_slot(s, &snapshot) < 0)
		return -1;
	rc = s->opt->snapshot ? logical_snapshot(s, snapshot) : 0;
	free(snapshot);
	return rc;
}

/*
 * START_REPLICATION from the slot's confirmed position: 0 streaming, 1 when
 * another connection holds the slot, -1 after another error.
 */
static int
start_streaming(struct logical *s)
{
	char *slot = pg_quote_ident(s->conn, s->opt->slot);
	char *pubid = pg_quote_ident(s->conn, s->opt->publication);
	char *publit = PQescapeLiteral(s->conn, pubid, strlen(pubid));
	char sql[1024];
	const char *state;
	PGresult *res;
	int busy;

	if (publit == NULL)
		die("out of memory");
	snprintf(sql, sizeof sql,
	    "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s)", slot, publit);
	free(slot);
	free(pubid);
	PQfreemem(publit);
	res = PQexec(s->conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_BOTH) {
		/* by its code, not its text: the text is translated under lc_messages */
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		busy = state != NULL && strcmp(state, SQLSTATE_OBJECT_IN_USE) == 0;
		log_error("cannot start streaming from slot \"%s\": %s", s->opt->slot, pg_errmsg(s->conn));
		PQclear(res);
		return busy ? 1 : -1;
	}
	PQclear(res);
	s->in_txn = 0;
	s->ping_out = 0;
	s->streaming = 1;
	s->last_status = mono_ms();
	return 0;
}

int
connect_stream(struct logical *s, int first)
{
	struct backoff b = BACKOFF_INIT;
	int rc;

	for (;;) {
		PQfinish(s->conn);
		s->conn = connect_replication(s->opt);
		rc = -1;
		if (s->conn && first) {
			if (prepare(s) < 0)
				return -1;
			first = 0;
		}
		if (s->conn) {
			if (stream_limits(s) < 0)
				return -1;
			if ((rc = start_streaming(s)) == 0)
				return 0;
		}
		/* without -f only a busy slot is worth waiting for, and not for long */
		if (sig_stop || (!s->opt->follow && !(rc == 1 && b.waited_ms < 10000)))
			return -1;
		backoff_sleep(&b, NULL);
		if (sig_stop)
			return -1;
	}
}
