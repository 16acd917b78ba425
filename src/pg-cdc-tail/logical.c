/*
 * Logical mode: read committed changes from a replication slot over the
 * streaming replication protocol with the built-in pgoutput plugin, and write
 * them as the same CDC events as trigger mode.  The source pays nothing extra
 * per write: the changes come from the WAL it writes anyway.
 *
 * pgoutput sends each transaction whole, in commit order, when it commits
 * (the server spills large ones to disk, not us): every change is written out
 * as it arrives, so no transaction is held in memory here.  Each change's pos
 * is its LSN; a row lock keeps two transactions from changing one key at
 * once, so per key the LSNs grow in commit order.
 *
 * The slot's confirmed flush LSN is the durable position.  It moves to a
 * transaction's end only once every line up to its last change is
 * acknowledged (--ack) or written (without it); restarting replays from there.
 */
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ackwatch.h"
#include "ackwin.h"
#include "jsonout.h"
#include "log.h"
#include "pgconn.h"
#include "pgoutput.h"
#include "sig.h"
#include "tail.h"

/* Per table, from the catalog before streaming: primary key and snapshot query. */
struct table_info {
	uint32_t oid;
	char *name;
	char **pk;
	int npk;
	char *snapshot_sql;
};

struct logical {
	struct emitter e;	/* first member: room() gets the state back from it */
	struct options *opt;
	PGconn *conn;
	struct table_info *info;
	int ninfo;
	uint32_t *wanted;	/* oids of -t tables; none: every published table */
	int nwanted;
	struct relation *rels;
	int nrels;
	uint32_t *domains;	/* pairs: domain oid, base type oid */
	int ndomains;
	struct ackwin *win;	/* marks: once line N is durable, the slot may confirm an LSN */
	uint64_t acked;
	int ackfd;
	/* transaction in progress */
	int in_txn;
	uint32_t xid;
	int64_t ts_ms;
	/* LSNs */
	uint64_t received;	/* the server's WAL end, as last heard */
	uint64_t durable;	/* may be confirmed as flushed */
	uint64_t reported;	/* flush LSN last sent */
	uint64_t stop_at;	/* without -f: the WAL end at start */
	uint64_t idle_end;	/* WAL end of the last keepalive between transactions */
	long status_ms;		/* interval of status updates */
	struct timespec last_status, last_ping;
	int ping_out;		/* a reply was asked for and has not come */
	int asked;		/* replies the server asked for within the second since asked_at */
	struct timespec asked_at;
	int caught_up;		/* without -f: every change up to stop_at is written */
	int streaming;		/* in COPY BOTH: status updates may be sent */
	struct value *vals, *olds;
	int vcap;
};

static const int64_t PG_EPOCH_MS = 946684800000LL;	/* 2000-01-01 in Unix ms */

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		die("out of memory");
	return p;
}

static long
ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void
lsn_text(char *buf, size_t size, uint64_t lsn)
{
	snprintf(buf, size, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

/* Parse an LSN as PostgreSQL writes it ("16/B374D848"); 0 if s is NULL or malformed. */
static uint64_t
lsn_parse(const char *s)
{
	unsigned hi, lo;

	if (s == NULL || sscanf(s, "%X/%X", &hi, &lo) != 2)
		return 0;
	return (uint64_t)hi << 32 | lo;
}

/* ---- reading protocol messages ---- */

struct reader {
	const unsigned char *p, *end;
	int bad;
};

static uint64_t
get_n(struct reader *r, int n)
{
	uint64_t v = 0;

	if (r->end - r->p < n) {
		r->bad = 1;
		r->p = r->end;
		return 0;
	}
	while (n-- > 0)
		v = v << 8 | *r->p++;
	return v;
}

static const char *
get_str(struct reader *r)
{
	const char *s = (const char *)r->p;
	const unsigned char *nul = memchr(r->p, '\0', r->end - r->p);

	if (nul == NULL) {
		r->bad = 1;
		r->p = r->end;
		return "";
	}
	r->p = nul + 1;
	return s;
}

/* ---- catalog look-ups, on the replication connection before streaming ---- */

/* A simple query (a walsender takes no extended protocol); NULL after logging. */
static PGresult *
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
static PGresult *
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
static int
ensure_publication(struct logical *s)
{
	char *pub = pg_quote_ident(s->conn, s->opt->publication);
	char *publit = pg_quote_literal(s->conn, s->opt->publication);
	char sql[2048];
	int exists, i, rc = -1;
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
	if (!exists && s->opt->ntables == 0) {
		log_error("publication \"%s\" does not exist, and without -t there is no table to put in it",
		    s->opt->publication);
		goto out;
	}
	for (i = 0; i < s->opt->ntables; i++) {
		char *tab = pg_quote_literal(s->conn, s->opt->tables[i]);
		char *rel;

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
static int
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

/* Is the table with this oid among those to emit? */
static int
wanted(const struct logical *s, uint32_t oid)
{
	int i;

	if (s->nwanted == 0)
		return 1;
	for (i = 0; i < s->nwanted; i++)
		if (s->wanted[i] == oid)
			return 1;
	return 0;
}

/*
 * The published tables, with their primary keys and the query a snapshot
 * reads them with; and the -t tables, each of which must be published.
 */
static int
load_tables(struct logical *s)
{
	PGresult *res;
	int i, j;

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

	/* primary key columns, one row each, in key order */
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

	s->wanted = xcalloc(s->opt->ntables, sizeof *s->wanted);
	for (i = 0; i < s->opt->ntables; i++) {
		uint32_t oid;

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
		if (s->info[i].npk == 0 && wanted(s, s->info[i].oid))
			log_warning("table \"%s\" has no primary key: its replica identity is its key",
			    s->info[i].name);
	}

	/* domains are written as their base type is */
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

static enum kind
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

/* ---- the slot ---- */

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

/* ---- acknowledgements and status updates ---- */

static void
mark_push(struct logical *s, uint64_t lsn)
{
	uint64_t line, *m = ackwin_newer(s->win, 0, &line);

	if (m == NULL || line != s->e.lines)
		m = ackwin_push(s->win, s->e.lines);
	*m = lsn;
}

/* ackwin's pop: a mark whose line is durable makes its LSN confirmable. */
static void
pop_lsn(void *ctx, void *payload)
{
	struct logical *s = ctx;
	uint64_t lsn = *(uint64_t *)payload;

	if (lsn > s->durable)
		s->durable = lsn;
}

/*
 * Between transactions with every line durable, the server has sent all it
 * decoded before its last keepalive: confirming that lets an idle slot (or
 * one whose changes are all in other tables) release WAL.
 */
static void
durable_idle(struct logical *s)
{
	if (ackwin_len(s->win) == 0 && s->acked == s->e.lines && !s->in_txn && s->idle_end > s->durable)
		s->durable = s->idle_end;
}

/* Lines durable downstream make their LSNs confirmable; -1 once the ack file was refused. */
static int
read_acks(struct logical *s)
{
	/* without --ack, written is as far as we can know */
	if (s->opt->ack == NULL && fflush(stdout) != 0)
		die("write error:");
	if (ackwin_update(s->win, s->e.lines, pop_lsn, s) < 0)
		return -1;
	s->acked = ackwin_acked(s->win);
	durable_idle(s);
	return 0;
}

static void
put64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = v & 0xff;
}

/* Standby status update: what was received, and what may be confirmed as flushed. */
static int
send_status(struct logical *s, int reply)
{
	unsigned char msg[34];
	struct timespec now;
	uint64_t written = s->received > s->durable ? s->received : s->durable;
	char a[32];

	clock_gettime(CLOCK_REALTIME, &now);
	msg[0] = 'r';
	put64(msg + 1, written);
	put64(msg + 9, s->durable);
	put64(msg + 17, s->durable);
	put64(msg + 25, (uint64_t)((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 - PG_EPOCH_MS * 1000));
	msg[33] = reply;
	if (PQputCopyData(s->conn, (char *)msg, sizeof msg) != 1 || PQflush(s->conn) != 0) {
		log_warning("cannot send a status update: %s", pg_errmsg(s->conn));
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &s->last_status);
	if (s->durable != s->reported) {
		lsn_text(a, sizeof a, s->durable);
		log_debug("confirmed %s", a);
	}
	s->reported = s->durable;
	return 0;
}

/* Send a status update when one is due: the flush LSN moved, or the interval passed. */
static int
status_due(struct logical *s)
{
	long since = ms_since(&s->last_status);

	if (since >= s->status_ms || (s->durable != s->reported && since >= 20))
		return send_status(s, 0);
	return 0;
}

/* emitter.room: lines that may be written before the window is full; waits, sending status. */
static long
room(struct emitter *e)
{
	struct logical *s = (struct logical *)e;
	uint64_t out;

	for (;;) {
		if (read_acks(s) < 0)
			return 0;
		out = s->e.lines - s->acked;
		if (out < (uint64_t)s->opt->window)
			return s->opt->window - out;
		if (sig_stop)
			return 0;
		/* the downstream can only acknowledge what it has */
		if (fflush(stdout) != 0)
			die("write error:");
		/* the server hears from us while we wait, or wal_sender_timeout ends the stream */
		if (s->streaming && status_due(s) < 0)
			return 0;
		{
			struct pollfd p[2] = { { STDOUT_FILENO, 0, 0 }, { s->ackfd, POLLIN, 0 } };

			if (poll(p, 2, 100) > 0) {
				if (p[0].revents & (POLLERR | POLLHUP))
					die("standard output closed by the reader");
				if (p[1].revents)
					ackwatch_drain(s->ackfd);
			}
		}
	}
}

/* ---- writing events ---- */

/* Read a TupleData into s->olds (old) or s->vals; its column count, or -1 if malformed. */
static int
read_tuple(struct logical *s, struct reader *r, int old)
{
	int n = (int)get_n(r, 2), i;
	struct value *vals;

	if (n > s->vcap) {
		s->vals = realloc(s->vals, n * sizeof *s->vals);
		s->olds = realloc(s->olds, n * sizeof *s->olds);
		if (s->vals == NULL || s->olds == NULL)
			die("out of memory");
		s->vcap = n;
	}
	vals = old ? s->olds : s->vals;
	for (i = 0; i < n && !r->bad; i++) {
		struct value *v = &vals[i];

		v->kind = (char)get_n(r, 1);
		v->len = 0;
		v->data = NULL;
		if (v->kind == 't') {
			v->len = get_n(r, 4);
			if ((size_t)(r->end - r->p) < v->len) {
				r->bad = 1;
				break;
			}
			v->data = (const char *)r->p;
			r->p += v->len;
		} else if (v->kind != 'n' && v->kind != 'u') {
			r->bad = 1;	/* binary values were never asked for */
		}
	}
	return r->bad ? -1 : n;
}

/*
 * One event.  before/after may be NULL; old_full says the old tuple is the
 * whole row (REPLICA IDENTITY FULL) rather than the identity columns.
 * old_key, the old tuple of a key change, makes the insert of the new key
 * name the key it replaces (and, when whole, fill its unchanged values).
 */
static void
put_event(struct logical *s, char op, const struct relation *rel, uint64_t lsn,
    const struct value *before, int old_full, const struct value *after,
    const struct value *old_key, int n)
{
	const struct value *fill = old_full ? (before ? before : old_key) : NULL;
	FILE *out = s->e.out;
	int i, any = 0;

	fprintf(out, "{\"op\":\"%c\"", op);
	fputs(rel->prefix, out);
	put_key(out, rel, after ? after : before, n);
	if (old_key) {
		fputs(",\"old_key\":", out);
		put_key(out, rel, old_key, n);
	}
	fputs(",\"before\":", out);
	if (before)
		put_row(out, rel, before, n, !old_full, NULL);
	else
		fputs("null", out);
	fputs(",\"after\":", out);
	if (after)
		put_row(out, rel, after, n, 0, fill);
	else
		fputs("null", out);
	for (i = 0; after && i < n && i < rel->ncols; i++) {
		if (after[i].kind != 'u' || (fill && fill[i].kind != 'u'))
			continue;
		fputs(any++ ? "," : ",\"unchanged\":[", out);
		json_put_string(out, rel->cols[i].name, strlen(rel->cols[i].name));
	}
	if (any)
		fputc(']', out);
	fprintf(out, ",\"pos\":%" PRIu64 ",\"txid\":%" PRIu32 ",\"ts_ms\":%" PRId64 "}\n",
	    lsn, s->xid, s->ts_ms);
	s->e.lines++;
}

static struct relation *
find_rel(struct logical *s, uint32_t oid)
{
	int i;

	for (i = 0; i < s->nrels; i++)
		if (s->rels[i].oid == oid)
			return &s->rels[i];
	return NULL;
}

static void
rel_clear(struct relation *rel)
{
	int i;

	for (i = 0; i < rel->ncols; i++)
		free(rel->cols[i].name);
	free(rel->cols);
	free(rel->key);
	free(rel->prefix);
	memset(rel, 0, sizeof *rel);
}

/* A Relation message: the table's columns, replacing what was known of it. */
static int
on_relation(struct logical *s, struct reader *r)
{
	uint32_t oid = get_n(r, 4);
	const char *nsp = get_str(r), *name = get_str(r);
	struct relation *rel = find_rel(s, oid);
	const struct table_info *info = NULL;
	int i, j;

	get_n(r, 1);	/* replica identity setting: the flags below say it per column */
	if (rel == NULL) {
		struct relation *grown = realloc(s->rels, (s->nrels + 1) * sizeof *s->rels);

		if (grown == NULL)
			die("out of memory");
		s->rels = grown;
		rel = &s->rels[s->nrels++];
		memset(rel, 0, sizeof *rel);
	} else {
		rel_clear(rel);
	}
	rel->oid = oid;
	rel->emit = wanted(s, oid);
	{
		char *full = xcalloc(strlen(nsp) + strlen(name) + 12, 1);

		sprintf(full, "%s.%s", *nsp ? nsp : "pg_catalog", name);
		rel->prefix = event_prefix(full);
		free(full);
	}
	rel->ncols = (int)get_n(r, 2);
	rel->cols = xcalloc(rel->ncols, sizeof *rel->cols);
	rel->key = xcalloc(rel->ncols, sizeof *rel->key);
	for (i = 0; i < rel->ncols && !r->bad; i++) {
		struct column *c = &rel->cols[i];

		c->ident = get_n(r, 1) & 1;
		c->name = xstrdup(get_str(r));
		c->type = get_n(r, 4);
		get_n(r, 4);	/* typmod */
		c->kind = type_kind(s, c->type);
	}
	for (i = 0; i < s->ninfo; i++)
		if (s->info[i].oid == oid)
			info = &s->info[i];
	/* the key is the primary key; without one (or a table added since), the identity */
	if (info && info->npk > 0) {
		for (j = 0; j < info->npk; j++) {
			for (i = 0; i < rel->ncols && strcmp(rel->cols[i].name, info->pk[j]) != 0; i++)
				;
			if (i < rel->ncols)
				rel->key[rel->nkey++] = i;
		}
	}
	if (rel->nkey == 0)
		for (i = 0; i < rel->ncols; i++)
			if (rel->cols[i].ident)
				rel->key[rel->nkey++] = i;
	return r->bad ? -1 : 0;
}

static int
on_change(struct logical *s, char type, struct reader *r, uint64_t lsn)
{
	struct relation *rel = find_rel(s, get_n(r, 4));
	struct value *newv = NULL, *oldv = NULL;
	int n = 0, old_full = 0;
	char tag;

	if (rel == NULL) {
		log_error("change to a relation the server did not describe");
		return -1;
	}
	tag = (char)get_n(r, 1);
	if (type != 'I' && (tag == 'K' || tag == 'O')) {
		old_full = tag == 'O';
		if ((n = read_tuple(s, r, 1)) < 0)
			return -1;
		oldv = s->olds;
		if (type == 'U')
			tag = (char)get_n(r, 1);
	}
	if (type != 'D') {
		if (tag != 'N' || (n = read_tuple(s, r, 0)) < 0)
			return -1;
		newv = s->vals;
	}
	if (r->bad)
		return -1;
	if (!rel->emit)
		return 0;
	if (type == 'I') {
		put_event(s, 'c', rel, lsn, NULL, 0, newv, NULL, n);
	} else if (type == 'D') {
		put_event(s, 'd', rel, lsn, oldv, old_full, NULL, NULL, n);
	} else if (oldv && key_changed(rel, oldv, newv, n)) {
		/* a new key is a new row: as trigger mode logs it, a delete then an insert */
		put_event(s, 'd', rel, lsn, oldv, old_full, NULL, NULL, n);
		put_event(s, 'c', rel, lsn, NULL, old_full, newv, oldv, n);
	} else {
		put_event(s, 'u', rel, lsn, oldv, old_full, newv, NULL, n);
	}
	return 0;
}

/*
 * A Truncate message: a "t" event for each of its relations that is emitted,
 * at the message's LSN.  TRUNCATE waits for the table's writers and holds
 * them off until it commits, so its LSN lies between their changes.
 */
static int
on_truncate(struct logical *s, struct reader *r, uint64_t lsn)
{
	uint32_t n = get_n(r, 4), i;
	struct relation *rel;

	get_n(r, 1);	/* CASCADE, RESTART IDENTITY: each table truncated is named */
	if (r->bad || (uint64_t)(r->end - r->p) != 4 * (uint64_t)n)
		return -1;
	for (i = 0; i < n; i++) {
		if ((rel = find_rel(s, get_n(r, 4))) == NULL) {
			log_error("truncate of a relation the server did not describe");
			return -1;
		}
		if (!rel->emit)
			continue;
		fprintf(s->e.out, "{\"op\":\"t\"%snull,\"before\":null,\"after\":null,\"pos\":%" PRIu64
		    ",\"txid\":%" PRIu32 ",\"ts_ms\":%" PRId64 "}\n", rel->prefix, lsn, s->xid, s->ts_ms);
		s->e.lines++;
	}
	return 0;
}

/* One pgoutput message, which the server sent at WAL position lsn. */
static int
on_message(struct logical *s, struct reader *r, uint64_t lsn)
{
	char type = (char)get_n(r, 1);
	uint64_t end;
	int64_t ts;

	switch (type) {
	case 'B':
		get_n(r, 8);		/* the commit's LSN */
		ts = (int64_t)get_n(r, 8);
		s->ts_ms = ts / 1000 + PG_EPOCH_MS;
		s->xid = get_n(r, 4);
		s->in_txn = 1;
		return r->bad ? -1 : 0;
	case 'C':
		get_n(r, 1);
		get_n(r, 8);
		end = get_n(r, 8);
		if (r->bad)
			return -1;
		s->in_txn = 0;
		mark_push(s, end);
		return 0;
	case 'R':
		return on_relation(s, r);
	case 'I': case 'U': case 'D':
		return on_change(s, type, r, lsn);
	case 'T':
		return on_truncate(s, r, lsn);
	case 'Y': case 'O': case 'M':
		return 0;
	default:
		log_error("unexpected pgoutput message '%c'", type);
		return -1;
	}
}

/* ---- streaming ---- */

static int logical_snapshot(struct logical *s, const char *exported);
static long sender_timeout(struct logical *s);

static int
start_streaming(struct logical *s)
{
	char *slot = pg_quote_ident(s->conn, s->opt->slot);
	char *pubid = pg_quote_ident(s->conn, s->opt->publication);
	char *publit = PQescapeLiteral(s->conn, pubid, strlen(pubid));
	char sql[1024];
	PGresult *res;

	if (publit == NULL)
		die("out of memory");
	snprintf(sql, sizeof sql,
	    "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s)", slot, publit);
	free(slot);
	free(pubid);
	PQfreemem(publit);
	res = PQexec(s->conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_BOTH) {
		log_error("cannot start streaming from slot \"%s\": %s", s->opt->slot, pg_errmsg(s->conn));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	s->in_txn = 0;
	s->ping_out = 0;
	s->streaming = 1;
	clock_gettime(CLOCK_MONOTONIC, &s->last_status);
	return 0;
}

/* Is the slot in use by another connection (a predecessor not yet gone)? */
static int
slot_busy(PGconn *conn)
{
	const char *m = PQerrorMessage(conn);

	return strstr(m, "is active for PID") != NULL;
}

/*
 * Connect, load the catalog, make sure of the slot, take the snapshot when
 * asked, and start streaming.  With -f, retries with backoff until it works
 * or a signal comes; without, gives a busy slot 10 s to become free.
 */
static int
connect_stream(struct logical *s, int first)
{
	long backoff = 100, waited = 0;
	char *snapshot = NULL;
	int n;

	for (;;) {
		PQfinish(s->conn);
		s->conn = connect_replication(s->opt);
		if (s->conn && first) {
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
			if (s->opt->snapshot && logical_snapshot(s, snapshot) < 0) {
				free(snapshot);
				return -1;
			}
			free(snapshot);
			snapshot = NULL;
			first = 0;
		}
		if (s->conn && s->status_ms == 0) {
			/* status updates well inside the server's wal_sender_timeout */
			long t = sender_timeout(s);

			s->status_ms = t > 0 && t / 3 < 10000 ? t / 3 : 10000;
		}
		if (s->conn && !s->opt->follow && s->stop_at == 0) {
			/* the end of what is committed, flushed to disk or not (synchronous_commit=off) */
			PGresult *res = query(s->conn, "SELECT pg_current_wal_insert_lsn()", PGRES_TUPLES_OK);

			if (res == NULL)
				return -1;
			s->stop_at = lsn_parse(PQgetvalue(res, 0, 0));
			PQclear(res);
		}
		if (s->conn && start_streaming(s) == 0)
			return 0;
		if (sig_stop || (!s->opt->follow && !(s->conn && slot_busy(s->conn) && waited < 10000)))
			return -1;
		log_info("retrying in %ld ms", backoff);
		sleep_ms(backoff);
		waited += backoff;
		if (sig_stop)
			return -1;
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
}

static int
on_copy_data(struct logical *s, const char *buf, int len)
{
	struct reader r = { (const unsigned char *)buf, (const unsigned char *)buf + len, 0 };
	uint64_t start, end;
	int reply;

	switch (get_n(&r, 1)) {
	case 'w':
		start = get_n(&r, 8);
		end = get_n(&r, 8);
		get_n(&r, 8);
		if (end > s->received)
			s->received = end;
		if (r.bad || on_message(s, &r, start) < 0) {
			log_error("malformed replication message at %" PRIu64, start);
			return -1;
		}
		return 0;
	case 'k':
		end = get_n(&r, 8);
		get_n(&r, 8);
		reply = (int)get_n(&r, 1);
		if (r.bad)
			return -1;
		s->ping_out = 0;
		if (log_level >= LOG_DEBUG) {
			char a[32];

			lsn_text(a, sizeof a, end);
			log_debug("keepalive at %s%s", a, reply ? ", reply asked" : "");
		}
		if (end > s->received)
			s->received = end;
		if (!s->in_txn) {
			s->idle_end = end;
			durable_idle(s);
		}
		if (!s->opt->follow && !s->in_txn && end >= s->stop_at)
			s->caught_up = 1;
		if (reply && s->durable < end) {
			/*
			 * A server shutting down asks again and again until we confirm
			 * everything it sent, which waits for the downstream: let it go
			 * rather than hold it up.  What is not acknowledged comes again.
			 */
			if (ms_since(&s->asked_at) > 1000) {
				clock_gettime(CLOCK_MONOTONIC, &s->asked_at);
				s->asked = 0;
			}
			if (++s->asked > 20) {
				log_warning("the server waits for confirmation of changes not yet acknowledged"
				    " downstream (shutting down?): disconnecting");
				return -2;
			}
		}
		return reply ? send_status(s, 0) : 0;
	default:
		log_error("unexpected replication message");
		return -1;
	}
}

/* Wait for data from the server, an acknowledgement, or the next status update. */
static void
wait_input(struct logical *s)
{
	struct pollfd p[3] = {
		{ PQsocket(s->conn), POLLIN, 0 }, { STDOUT_FILENO, 0, 0 }, { s->ackfd, POLLIN, 0 }
	};
	long ms = s->status_ms - ms_since(&s->last_status);

	if (!s->opt->follow && ms > 20)
		ms = 20;	/* the next ping */
	if (ms < 0)
		ms = 0;
	if (poll(p, s->ackfd >= 0 ? 3 : 2, ms) > 0) {
		if (p[1].revents & (POLLERR | POLLHUP))
			die("standard output closed by the reader");
		if (p[2].revents)
			ackwatch_drain(s->ackfd);
	}
}

static int
stream(struct logical *s)
{
	unsigned long count = 0;
	char *buf;
	int n;

	while (!sig_stop && !s->caught_up) {
		if (s->e.lines - s->acked >= (uint64_t)s->opt->window && room(&s->e) <= 0)
			break;
		n = PQgetCopyData(s->conn, &buf, 1);
		if (n > 0) {
			int rc = on_copy_data(s, buf, n);

			PQfreemem(buf);
			if (rc == -2)
				goto lost;
			if (rc < 0)
				return -1;
			/* a stream that never pauses still confirms and reports */
			if (++count % 4096 == 0) {
				if (read_acks(s) < 0)
					return -1;
				if (status_due(s) < 0)
					goto lost;
			}
			continue;
		}
		if (n == 0) {
			/* nothing more for now: hand over what was written, then wait */
			if (fflush(stdout) != 0)
				die("write error:");
			if (read_acks(s) < 0)
				return -1;
			if (status_due(s) < 0)
				goto lost;
			if (!s->opt->follow && !s->ping_out && ms_since(&s->last_ping) >= 20) {
				/* the server's reply says how far it has decoded */
				if (send_status(s, 1) < 0)
					goto lost;
				s->ping_out = 1;
				clock_gettime(CLOCK_MONOTONIC, &s->last_ping);
			}
			wait_input(s);
			if (PQconsumeInput(s->conn) == 0)
				goto lost;
			continue;
		}
		if (n == -1) {
			PGresult *res = PQgetResult(s->conn);

			log_warning("the server ended the stream: %s",
			    PQresultStatus(res) == PGRES_COMMAND_OK ? "" : pg_errmsg(s->conn));
			PQclear(res);
		}
lost:
		s->streaming = 0;
		if (fflush(stdout) != 0)
			die("write error:");
		if (!s->opt->follow) {
			log_error("replication connection lost: %s", pg_errmsg(s->conn));
			return -1;
		}
		log_warning("replication connection lost: %s; reconnecting", pg_errmsg(s->conn));
		if (connect_stream(s, 0) < 0)
			return sig_stop ? 0 : -1;
	}
	if (fflush(stdout) != 0)
		die("write error:");
	return 0;
}

/* ackwin_wait's tick: the server hears from us while we wait. */
static int
status_tick(void *ctx)
{
	struct logical *s = ctx;

	if (PQstatus(s->conn) == CONNECTION_OK)
		status_due(s);
	return 0;
}

/* After the stream: wait for the last acknowledgements and confirm them. */
static int
finish(struct logical *s)
{
	if (ackwin_wait(s->win, s->e.lines, s->opt->ack_timeout_ms, pop_lsn, s, status_tick) < 0 ||
	    read_acks(s) < 0)
		return -1;
	if (PQstatus(s->conn) == CONNECTION_OK && s->durable != s->reported)
		send_status(s, 0);
	return report_unacked(s->acked, s->e.lines);
}

/* --snapshot: each emitted table's rows as op "r", read under the slot's exported snapshot. */
static int
logical_snapshot(struct logical *s, const char *exported)
{
	PGconn *conn;
	int i, rc = 0;

	if (exported == NULL)
		log_warning("slot \"%s\" exists: the snapshot is taken now, not at the slot's start;"
		    " changes since the slot's position follow it", s->opt->slot);
	if ((conn = pg_connect(s->opt->conninfo)) == NULL)
		return -1;
	for (i = 0; i < s->ninfo && rc == 0 && !sig_stop; i++) {
		struct table_info *ti = &s->info[i];
		struct table t = { 0 };
		struct snap *taken = NULL;

		if (!wanted(s, ti->oid))
			continue;
		if (ti->snapshot_sql == NULL) {
			log_error("table \"%s\" has no primary key: --snapshot cannot key its rows", ti->name);
			rc = -1;
			break;
		}
		t.prefix = event_prefix(ti->name);
		t.snapshot_sql = ti->snapshot_sql;
		t.name = ti->name;
		if (emit_snapshot(conn, &t, &s->e, s->opt->batch, exported, &taken) < 0)
			rc = -1;
		snap_unref(taken);
		free(t.prefix);
	}
	PQfinish(conn);
	if (fflush(stdout) != 0)
		die("write error:");
	return sig_stop ? -1 : rc;
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

int
logical_run(struct options *opt)
{
	struct logical s = { .opt = opt, .ackfd = -1 };
	static char outbuf[1 << 16];
	int status = 0, i, j;

	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	s.e.out = stdout;
	s.e.room = room;
	if ((s.win = ackwin_open(opt->ack, sizeof(uint64_t), SIZE_MAX)) == NULL)
		return -1;
	s.ackfd = ackwin_fd(s.win);
	if (connect_stream(&s, 1) < 0) {
		status = -1;
	} else {
		status = stream(&s);
	}
	if (fflush(stdout) != 0 || (!opt->follow && fclose(stdout) != 0))
		die("write error:");
	if (status == 0 && finish(&s) < 0)
		status = -1;

	for (i = 0; i < s.nrels; i++)
		rel_clear(&s.rels[i]);
	free(s.rels);
	for (i = 0; i < s.ninfo; i++) {
		for (j = 0; j < s.info[i].npk; j++)
			free(s.info[i].pk[j]);
		free(s.info[i].pk);
		free(s.info[i].name);
		free(s.info[i].snapshot_sql);
	}
	free(s.info);
	free(s.wanted);
	free(s.domains);
	ackwin_free(s.win, NULL, NULL);
	free(s.vals);
	free(s.olds);
	PQfinish(s.conn);
	if (opt->follow && fclose(stdout) != 0 && status == 0)
		die("write error:");
	return status;
}
