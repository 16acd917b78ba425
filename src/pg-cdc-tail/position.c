/*
 * Trigger mode: the consumer's positions in cdc.consumer, and the statement
 * that opens a round of reading.  Following a busy table, each round reads
 * one page per table: the round's one statement stores the positions of the
 * lines written in the round before, takes the snapshot that bounds the new
 * batches, and makes sure what that snapshot sees is on disk; a second reads
 * the page.  A position is stored a round late, or when the tail goes idle
 * or exits: a crash in between sends those lines again, as any crash after
 * writing and before storing does.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "tail.h"

/* Upsert the positions given as arrays: oids $2, snap_lo $3, snap_hi $4, last_id $5. */
#define STORE_SQL \
	"INSERT INTO cdc.consumer (name, tbl, snap_lo, snap_hi, last_id, updated_at)" \
	" SELECT $1, u.tbl::regclass, u.lo::pg_snapshot, u.hi::pg_snapshot, u.last, now()" \
	"   FROM unnest($2::oid[], $3::text[], $4::text[], $5::bigint[]) AS u(tbl, lo, hi, last)" \
	" ON CONFLICT (name, tbl) DO UPDATE SET snap_lo = excluded.snap_lo," \
	" snap_hi = excluded.snap_hi, last_id = excluded.last_id, updated_at = now()"

/*
 * The round: the stores, then the snapshot (the statement's, taken before
 * them), and a flush of the WAL when some of it is not on disk yet: a
 * transaction committed with synchronous_commit=off is visible before it is
 * durable, and one emitted and then lost by a crash of the source would stay
 * in the warehouse.  The commit of a transaction that wrote (a store, else a
 * logical message) flushes the WAL up to its commit record, which comes after
 * the commit of every transaction the snapshot sees.  connect_source() makes
 * sure the session's commits do flush.
 */
static const char round_sql[] =
	"WITH stored AS (" STORE_SQL ")"
	" SELECT pg_current_snapshot()::text,"
	"        CASE WHEN pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn()"
	"             THEN pg_logical_emit_message(true, 'pgcdc', '') IS NOT NULL END";

/* An array literal's element: a snapshot's text (digits, ':' and ','), quoted, or NULL. */
static void
put_snap(FILE *f, const struct snap *s)
{
	if (s)
		fprintf(f, "\"%s\"", s->text);
	else
		fputs("NULL", f);
}

/* Which position of table i is due for storing: NULL when none is. */
static const struct pos *
due(const struct tail *s, int i)
{
	const struct table *t = &s->tables[i];
	const struct pos *p = s->opt->ack ? &s->want[i] : &t->cur;

	if (s->opt->ack && !s->moved[i])
		return NULL;
	return pos_equal(p, &t->stored) ? NULL : p;
}

int
pos_arrays(const struct tail *s, const struct pos *(*pick)(const struct tail *s, int i), char *arr[4])
{
	FILE *f[4];
	size_t len[4];
	int i, j, n = 0;

	for (j = 0; j < 4; j++)
		if ((f[j] = open_memstream(&arr[j], &len[j])) == NULL || fputc('{', f[j]) == EOF)
			die("out of memory");
	for (i = 0; i < s->ntables; i++) {
		const struct pos *p = pick(s, i);

		if (p == NULL)
			continue;
		if (n++ > 0)
			for (j = 0; j < 4; j++)
				fputc(',', f[j]);
		fputs(s->tables[i].regclass, f[0]);
		put_snap(f[1], p->lo);
		put_snap(f[2], p->hi);
		fprintf(f[3], "%" PRId64, p->last);
	}
	for (j = 0; j < 4; j++)
		if (fputc('}', f[j]) == EOF || fclose(f[j]) != 0)
			die("out of memory");
	return n;
}

/* The positions due are stored: remember them. */
static void
stored_all(struct tail *s)
{
	int i;

	for (i = 0; i < s->ntables; i++) {
		const struct pos *p = due(s, i);

		if (p == NULL)
			continue;
		pos_set(&s->tables[i].stored, p);
		s->tables[i].has_stored = 1;
		s->moved[i] = 0;
	}
}

/*
 * Run sql (STORE_SQL or round_sql) with the positions due; its result in
 * *res, or -1 after logging.  With store_only and nothing due, no statement
 * at all: *res stays NULL.
 */
static int
run_with_positions(struct tail *s, const char *sql, int store_only, PGresult **res)
{
	char *arr[4];
	const char *params[5];
	int j, n;

	*res = NULL;
	n = pos_arrays(s, due, arr);
	if (n == 0 && store_only) {
		for (j = 0; j < 4; j++)
			free(arr[j]);
		return 0;
	}
	params[0] = s->opt->name;
	for (j = 0; j < 4; j++)
		params[j + 1] = arr[j];
	*res = store_only ?
	    exec_prepared(s->conn, "pgcdc_store", sql, 5, params, &s->store_prepared) :
	    exec_prepared(s->conn, "pgcdc_round", sql, 5, params, &s->round_prepared);
	for (j = 0; j < 4; j++)
		free(arr[j]);
	/* a lost connection may give no result at all */
	if (PQresultStatus(*res) != (store_only ? PGRES_COMMAND_OK : PGRES_TUPLES_OK)) {
		if (!pg_conn_lost(s->conn))
			log_error("cannot store the positions of consumer \"%s\": %s", s->opt->name,
			    pg_errmsg(s->conn));
		PQclear(*res);
		*res = NULL;
		return -1;
	}
	if (n > 0)
		stored_all(s);
	return 0;
}

int
sync_positions(struct tail *s)
{
	PGresult *res;

	if (run_with_positions(s, STORE_SQL, 1, &res) < 0)
		return -1;
	PQclear(res);
	return 0;
}

char *
round_snapshot(struct tail *s)
{
	PGresult *res;
	char *snap;

	if (run_with_positions(s, round_sql, 0, &res) < 0)
		return NULL;
	snap = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return snap;
}

/* Load the consumer's stored position for t into t->cur and t->stored. */
int
position_load(PGconn *conn, const char *consumer, struct table *t)
{
	const char *params[2] = { consumer, t->regclass };
	PGresult *res = PQexecParams(conn,
	    "SELECT snap_lo::text, snap_hi::text, last_id FROM cdc.consumer"
	    " WHERE name = $1 AND tbl = $2::oid::regclass", 2, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (!pg_conn_lost(conn))
			log_error("query failed: %s", pg_errmsg(conn));
		PQclear(res);
		return -1;
	}
	pos_clear(&t->cur);
	t->has_stored = PQntuples(res) > 0;
	if (t->has_stored) {
		if (!PQgetisnull(res, 0, 0))
			t->cur.lo = snap_new(PQgetvalue(res, 0, 0));
		if (!PQgetisnull(res, 0, 1))
			t->cur.hi = snap_new(PQgetvalue(res, 0, 1));
		t->cur.last = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	}
	pos_set(&t->stored, &t->cur);
	PQclear(res);
	return 0;
}

/*
 * A new session, where no statement is prepared yet.  Its commits must flush
 * the WAL (round_sql counts on it): raise synchronous_commit from off to
 * local, leave any stronger setting be.
 */
int
session_setup(struct tail *s)
{
	s->round_prepared = s->store_prepared = 0;
	return pg_command(s->conn, "SELECT set_config('synchronous_commit', 'local', false)"
	    " WHERE current_setting('synchronous_commit') = 'off'");
}
