/*
 * Logical mode's reports (stats.h), from what the replication stream tells,
 * with no connection of their own:
 *
 *   slot_bytes_behind  the server's WAL end, as last heard (the walEnd of
 *                      XLogData and keepalive messages; at connecting,
 *                      pg_current_wal_lsn()), minus the LSN last confirmed
 *                      to the slot (at connecting, its confirmed_flush_lsn);
 *   seconds_behind     now minus the commit time of the transaction being
 *                      written (or last written), while the server has
 *                      sent no keepalive since its Begin (a keepalive
 *                      between transactions says it has nothing more
 *                      decoded to send); 0 once it has.  The oldest change
 *                      not yet written is of that transaction or a later
 *                      one: its age is at most this.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "log.h"
#include "logical.h"
#include "notify.h"

/* Bytes of WAL the slot holds that are not confirmed. */
static double
bytes_behind(const struct logical *s)
{
	uint64_t end = s->received > s->start_end ? s->received : s->start_end;
	uint64_t confirmed = s->reported > s->start_confirmed ? s->reported : s->start_confirmed;

	return end > confirmed ? (double)(end - confirmed) : 0;
}

/* Seconds since the commit of the transaction being (or last) written, while more is coming. */
static double
seconds_behind(const struct logical *s)
{
	struct timespec now;
	double ms;

	if (!s->behind)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	ms = (double)now.tv_sec * 1000 + now.tv_nsec / 1e6 - (double)s->ts_ms;
	return ms > 0 ? ms / 1000 : 0;
}

/* The figures of a report. */
static void
figures(void *arg, struct figures *f)
{
	struct logical *s = arg;

	report_lines(f, &s->e, s->acked, s->reconnects);
	fig_add(f, "seconds_behind", HELP_SECONDS_BEHIND, 0,
	    seconds_behind(s));
	fig_add(f, "slot_bytes_behind", "Bytes of WAL between the server's end and the slot's confirmed LSN.",
	    0, bytes_behind(s));
}

/* systemd's STATUS= line. */
static void
status_line(void *arg, char *buf, size_t size)
{
	struct logical *s = arg;

	snprintf(buf, size, "%" PRIu64 " lines written, %" PRIu64 " acknowledged; %.0f bytes behind (%.1f s)",
	    s->e.lines, s->acked, bytes_behind(s), seconds_behind(s));
}

int
logical_report_open(struct logical *s)
{
	stats_rate_start(&s->e.rate, (double)s->e.lines);
	return reporter_open(&s->rep, "pg-cdc-tail", &s->opt->stats,
	    &(struct report_ops){ figures, status_line }, s);
}

int
logical_report_close(struct logical *s)
{
	int rc = reporter_final(&s->rep);

	notify("STOPPING=1");
	reporter_close(&s->rep);
	return rc;
}
