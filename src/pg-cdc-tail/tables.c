/*
 * Trigger mode: which tables a run follows.  The -t tables that are names
 * must be captured at start; with no -t, every table of cdc.captured, and
 * with patterns (fnmatch on schema.table) those matching.  Following (-f),
 * such a run looks again every --poll interval, and at once when
 * cdc.enable() notifies, and takes up the tables enabled since: from the
 * start of their log, or with --snapshot after a snapshot of their rows
 * that the log then continues exactly as at start.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pgconn.h"
#include "sig.h"
#include "tail.h"

/* A new entry at the end of s->tables, the other arrays grown with it. */
static int
table_add(struct tail *s)
{
	int i = s->ntables;

	if (i == MAX_TABLES) {
		log_error("more than %d tables to follow", MAX_TABLES);
		return -1;
	}
	if (i == s->cap) {
		int cap = s->cap ? 2 * s->cap : 8;

		s->tables = realloc(s->tables, cap * sizeof *s->tables);
		s->want = realloc(s->want, cap * sizeof *s->want);
		s->moved = realloc(s->moved, cap * sizeof *s->moved);
		if (s->tables == NULL || s->want == NULL || s->moved == NULL)
			die("out of memory");
		s->cap = cap;
	}
	memset(&s->tables[i], 0, sizeof s->tables[i]);
	memset(&s->want[i], 0, sizeof s->want[i]);
	s->moved[i] = 0;
	return i;
}

/* Resolve table name into a new entry with its stored position; its index, or -1. */
static int
table_open(struct tail *s, const char *name)
{
	int i = table_add(s);

	if (i < 0)
		return -1;
	s->ntables++;
	if (tables_resolve(s->conn, &s->tables[i], name, s->opt->schema_events) < 0 ||
	    position_load(s->conn, s->opt->name, &s->tables[i]) < 0) {
		table_free(&s->tables[s->ntables - 1]);
		s->ntables--;
		return -1;
	}
	pos_set(&s->want[i], &s->tables[i].cur);
	return i;
}

static int
following(const struct tail *s, const char *oid)
{
	int i;

	for (i = 0; i < s->ntables; i++)
		if (strcmp(s->tables[i].regclass, oid) == 0)
			return 1;
	return 0;
}

/*
 * --snapshot of table i: its rows, then (for a consumer with no position
 * stored) the log from the transactions that snapshot did not see.
 */
static int
snapshot_table(struct tail *s, int i)
{
	struct table *t = &s->tables[i];
	struct snap *taken = NULL;
	long n;

	while ((n = emit_snapshot(s->conn, t, &s->e, s->opt->batch, NULL, &taken)) < 0)
		if (sig_stop || recover(s) < 0)
			return sig_stop ? 0 : -1;
	log_debug("%s: snapshot of %ld rows at %s", t->name, n, taken->text);
	if (!t->has_stored) {
		struct pos p = { taken, NULL, 0 };

		pos_set(&t->cur, &p);
		if (s->e.win)
			window_push(s->e.win, s->e.lines, i, &t->cur);
	}
	snap_unref(taken);
	return 0;
}

int
take_snapshots(struct tail *s)
{
	int i;

	for (i = 0; i < s->ntables && !sig_stop; i++)
		if (snapshot_table(s, i) < 0)
			return -1;
	s->started = 1;
	return 0;
}

/* Follow the captured tables that match and are not followed yet. */
static int
discover(struct tail *s)
{
	PGresult *res = PQexec(s->conn,
	    "SELECT c.oid::text, format('%I.%I', n.nspname, c.relname), n.nspname || '.' || c.relname"
	    "  FROM cdc.captured cap JOIN pg_class c ON c.oid = cap.tbl"
	    "  JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 3");
	int i, j, rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (!pg_conn_lost(s->conn))
			log_error("cannot list the captured tables: %s", pg_errmsg(s->conn));
		PQclear(res);
		return -1;
	}
	for (i = 0; i < PQntuples(res) && rc == 0 && !sig_stop; i++) {
		if (following(s, PQgetvalue(res, i, 0)) || (s->opt->ntables > 0 &&
		    !pattern_match(s->opt->tables, s->opt->ntables, PQgetvalue(res, i, 2))))
			continue;
		if ((j = table_open(s, PQgetvalue(res, i, 1))) < 0) {
			rc = -1;
			break;
		}
		if (s->started)
			log_info("following table \"%s\"", s->tables[j].name);
		if (s->started && s->opt->snapshot)
			rc = snapshot_table(s, j);
	}
	PQclear(res);
	s->last_scan = mono_ms();
	s->rescan = 0;
	return rc;
}

int
tables_setup(struct tail *s)
{
	int i;

	for (i = 0; i < s->opt->ntables; i++)
		if (!is_pattern(s->opt->tables[i]) && table_open(s, s->opt->tables[i]) < 0)
			return -1;
	if (s->opt->dynamic) {
		if (s->ntables == 0 && capture_installed(s->conn) < 0)
			return -1;
		if (discover(s) < 0)
			return -1;
	}
	if (!s->opt->snapshot)
		s->started = 1;
	return 0;
}

int
tables_rescan(struct tail *s)
{
	if (!s->opt->dynamic || !s->opt->follow || !s->started)
		return 0;
	if (!s->rescan && mono_ms() - s->last_scan < s->opt->poll_ms)
		return 0;
	return discover(s);
}
