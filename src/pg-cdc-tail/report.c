/*
 * Trigger mode's reports (stats.h): the lines written and acknowledged, the
 * pos of the last event, and how far the tail is behind the source: the
 * changes committed and not yet written out, per table and in all, and the
 * age of the oldest of them.  The source is asked (cdc.lag_of() of sql/cdc.sql,
 * with the positions written out) only when a report or systemd's STATUS=
 * is due, and at most once a second.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "ackwin.h"
#include "clock.h"
#include "log.h"
#include "notify.h"
#include "pgconn.h"
#include "tail.h"

/* The lag behind each position written out, in the order of the tables (pos_arrays). */
static const char lag_sql[] =
	"SELECT l.changes, greatest(extract(epoch FROM clock_timestamp() - l.oldest), 0)"
	"  FROM unnest($1::oid[], $2::text[], $3::text[], $4::bigint[])"
	"       WITH ORDINALITY AS u(tbl, lo, hi, last, i)"
	" CROSS JOIN LATERAL cdc.lag_of(u.tbl::regclass, u.lo::pg_snapshot, u.hi::pg_snapshot, u.last) l"
	" ORDER BY u.i";

/* The least time between two questions to the source, in ms. */
#define LAG_EVERY_MS 1000

/* pos_arrays' pick: every table's position written out. */
static const struct pos *
written(const struct tail *s, int i)
{
	return &s->tables[i].cur;
}

/* Forget the lag: unknown until asked again. */
static void
lag_unknown(struct tail *s)
{
	int i;

	s->changes_behind = s->seconds_behind = NAN;
	for (i = 0; i < s->ntables; i++)
		s->tables[i].behind = NAN;
}

/* Take the answer of lag_sql: each table's count, their sum and the oldest one's age. */
static void
lag_take(struct tail *s, PGresult *res)
{
	int i;

	s->changes_behind = s->seconds_behind = 0;
	for (i = 0; i < s->ntables && i < PQntuples(res); i++) {
		/* a table no longer captured has no log to be behind in */
		s->tables[i].behind = PQgetisnull(res, i, 0) ? NAN : strtod(PQgetvalue(res, i, 0), NULL);
		if (!isnan(s->tables[i].behind))
			s->changes_behind += s->tables[i].behind;
		if (!PQgetisnull(res, i, 1) && strtod(PQgetvalue(res, i, 1), NULL) > s->seconds_behind)
			s->seconds_behind = strtod(PQgetvalue(res, i, 1), NULL);
	}
}

/*
 * Ask the source how far behind the positions written out are, unless it
 * was asked less than LAG_EVERY_MS ago.  A failure leaves the figures
 * unknown: a lost connection is the main loop's to find, and a source whose
 * cdc.sql predates cdc.lag_of() gets a warning once.
 */
static void
lag_refresh(struct tail *s)
{
	const char *params[4];
	char *arr[4];
	PGresult *res;
	int j;

	if (s->lag_at > 0 && mono_ms() - s->lag_at < LAG_EVERY_MS)
		return;
	s->lag_at = mono_ms();
	lag_unknown(s);
	if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK || s->ntables == 0) {
		if (s->ntables == 0)
			s->changes_behind = s->seconds_behind = 0;
		return;
	}
	pos_arrays(s, written, arr);
	for (j = 0; j < 4; j++)
		params[j] = arr[j];
	res = PQexecParams(s->conn, lag_sql, 4, NULL, params, NULL, NULL, 0);
	for (j = 0; j < 4; j++)
		free(arr[j]);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		lag_take(s, res);
	else if (!pg_conn_lost(s->conn) && !s->lag_warned++)
		log_warning("cannot ask how far behind the source is (run sql/cdc.sql again?): %s",
		    pg_errmsg(s->conn));
	PQclear(res);
}

void
report_lines(struct figures *f, struct emitter *e, uint64_t acked, unsigned long reconnects)
{
	fig_add(f, "lines_out", HELP_LINES_OUT, 1, (double)e->lines);
	fig_add(f, "lines_per_second", HELP_LINES_PER_SECOND, 0,
	    stats_rate(&e->rate, (double)e->lines));
	fig_add(f, "lines_acknowledged", HELP_LINES_ACKNOWLEDGED, 1,
	    (double)acked);
	fig_add(f, "pos", HELP_POS, 0, e->lines ? (double)e->pos : NAN);
	fig_add(f, "reconnects", "Connections to the source made anew after one was lost.", 1,
	    (double)reconnects);
}

/* The figures of a report (stats.h). */
static void
figures(void *arg, struct figures *f)
{
	struct tail *s = arg;
	int i;

	lag_refresh(s);
	report_lines(f, &s->e, s->e.win ? ackwin_acked(s->e.win) : s->e.lines, s->reconnects);
	fig_add(f, "tables", "Tables followed.", 0, s->ntables);
	fig_add(f, "changes_behind", "Changes committed and not yet written out.", 0, s->changes_behind);
	fig_add(f, "seconds_behind", HELP_SECONDS_BEHIND, 0,
	    s->seconds_behind);
	for (i = 0; i < s->ntables; i++) {
		if (s->tables[i].labels == NULL)
			s->tables[i].labels = stats_labels("table", s->tables[i].name, NULL);
		if (!isnan(s->tables[i].behind))
			fig_sample(f, "table_changes_behind", "Changes of a table committed and not yet written out.",
			    0, s->tables[i].behind, s->tables[i].labels, s->tables[i].name);
	}
}

/* systemd's STATUS= line. */
static void
status_line(void *arg, char *buf, size_t size)
{
	struct tail *s = arg;

	lag_refresh(s);
	snprintf(buf, size, "%" PRIu64 " lines written, %" PRIu64 " acknowledged; %.0f changes behind (%.1f s)",
	    s->e.lines, s->e.win ? ackwin_acked(s->e.win) : s->e.lines,
	    isnan(s->changes_behind) ? 0 : s->changes_behind,
	    isnan(s->seconds_behind) ? 0 : s->seconds_behind);
}

int
report_open(struct tail *s)
{
	lag_unknown(s);
	stats_rate_start(&s->e.rate, (double)s->e.lines);
	return reporter_open(&s->rep, "pg-cdc-tail", &s->opt->stats,
	    &(struct report_ops){ figures, status_line }, s);
}

/* Connected, the tables known: what systemd waits for with Type=notify. */
void
report_ready(struct tail *s)
{
	notify("READY=1\nSTATUS=connected, following %d table%s", s->ntables, s->ntables == 1 ? "" : "s");
}

/* The last report, STOPPING=1: -1 when the report could not be written. */
int
report_close(struct tail *s)
{
	int rc;

	s->lag_at = 0;
	rc = reporter_final(&s->rep);
	notify("STOPPING=1");
	reporter_close(&s->rep);
	return rc;
}
