/*
 * pg-cdc-tail logical mode: the stream loop.  It reads the server's CopyData
 * messages, lets the ack window bound what is written ahead of the
 * downstream, and tells the server in standby status updates how far the
 * slot may be confirmed: a transaction's end once every line up to its last
 * change is acknowledged (--ack) or written.  A lost connection is made anew
 * with -f; a clean stop ends the COPY as pg_recvlogical does.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "ackwatch.h"
#include "ackwin.h"
#include "clock.h"
#include "log.h"
#include "logical.h"
#include "pgconn.h"
#include "sig.h"

void
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
void
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
int
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
	s->last_status = mono_ms();
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
	long since = (long)(mono_ms() - s->last_status);

	if (since >= s->status_ms || (s->durable != s->reported && since >= 20))
		return send_status(s, 0);
	return 0;
}

/* emitter.room: lines that may be written before the window is full; waits, sending status. */
long
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
		if ((s->streaming && status_due(s) < 0) || reporter_tick(&s->rep) < 0)
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

int
on_keepalive(struct logical *s, uint64_t end, int reply)
{
	s->ping_out = 0;
	if (log_level >= LOG_DEBUG) {
		char a[32];

		lsn_text(a, sizeof a, end);
		log_debug("keepalive at %s%s", a, reply ? ", reply asked" : "");
	}
	if (end > s->received)
		s->received = end;
	if (!s->in_txn) {
		s->behind = 0;
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
		if (mono_ms() - s->asked_at > 1000) {
			s->asked_at = mono_ms();
			s->asked = 0;
		}
		if (++s->asked > 20) {
			log_warning("the server waits for confirmation of changes not yet acknowledged"
			    " downstream (shutting down?): disconnecting");
			return -2;
		}
	}
	return reply ? send_status(s, 0) : 0;
}

/* Wait for data from the server, an acknowledgement, or the next status update. */
static void
wait_input(struct logical *s)
{
	struct pollfd p[3] = {
		{ PQsocket(s->conn), POLLIN, 0 }, { STDOUT_FILENO, 0, 0 }, { s->ackfd, POLLIN, 0 }
	};
	long ms = s->status_ms - (long)(mono_ms() - s->last_status);

	if (!s->opt->follow && ms > 20)
		ms = 20;	/* the next ping */
	if (ms < 0)
		ms = 0;
	if (poll(p, s->ackfd >= 0 ? 3 : 2, reporter_wait(&s->rep, ms)) > 0) {
		if (p[1].revents & (POLLERR | POLLHUP))
			die("standard output closed by the reader");
		if (p[2].revents)
			ackwatch_drain(s->ackfd);
	}
}

/* Nothing more for now: hand over what was written, then wait.  As read_stream. */
static int
idle(struct logical *s)
{
	if (fflush(stdout) != 0)
		die("write error:");
	if (read_acks(s) < 0)
		return -1;
	if (status_due(s) < 0)
		return 0;
	if (!s->opt->follow && !s->ping_out && mono_ms() - s->last_ping >= 20) {
		/* the server's reply says how far it has decoded */
		if (send_status(s, 1) < 0)
			return 0;
		s->ping_out = 1;
		s->last_ping = mono_ms();
	}
	wait_input(s);
	return PQconsumeInput(s->conn) != 0;
}

/*
 * Read what the server has sent, or wait for it: 1 to go on, 0 when the
 * connection is lost (or given up), -1 after an error that ends the run.
 */
static int
read_stream(struct logical *s, unsigned long *count)
{
	PGresult *res;
	char *buf;
	int n = PQgetCopyData(s->conn, &buf, 1), rc;

	if (n > 0) {
		rc = on_copy_data(s, buf, n);
		PQfreemem(buf);
		if (rc < 0)
			return rc == -2 ? 0 : -1;
		/* a stream that never pauses still confirms and reports */
		if (++*count % 4096 == 0) {
			if (read_acks(s) < 0)
				return -1;
			if (status_due(s) < 0)
				return 0;
		}
		return 1;
	}
	if (n == 0)
		return idle(s);
	if (n == -1) {
		res = PQgetResult(s->conn);
		log_warning("the server ended the stream: %s",
		    PQresultStatus(res) == PGRES_COMMAND_OK ? "" : pg_errmsg(s->conn));
		PQclear(res);
	}
	return 0;
}

/* The connection is lost: 0 streaming again (-f), 1 stopped by a signal meanwhile, -1 failed. */
static int
reconnect(struct logical *s)
{
	s->streaming = 0;
	if (fflush(stdout) != 0)
		die("write error:");
	if (!s->opt->follow) {
		log_error("replication connection lost: %s", pg_errmsg(s->conn));
		return -1;
	}
	log_warning("replication connection lost: %s; reconnecting", pg_errmsg(s->conn));
	s->reconnects++;
	if (connect_stream(s, 0) < 0)
		return sig_stop ? 1 : -1;
	return 0;
}

int
stream(struct logical *s)
{
	unsigned long count = 0;
	int rc;

	while (!sig_stop && !s->caught_up) {
		if (reporter_tick(&s->rep) < 0)
			return -1;
		if (s->e.lines - s->acked >= (uint64_t)s->opt->window && room(&s->e) <= 0)
			break;
		if ((rc = read_stream(s, &count)) < 0)
			return -1;
		if (rc == 0 && (rc = reconnect(s)) != 0)
			return rc < 0 ? -1 : 0;
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
	return reporter_tick(&s->rep);
}

int
finish(struct logical *s)
{
	if (ackwin_wait(s->win, s->e.lines, s->opt->ack_timeout_ms, pop_lsn, s, status_tick) < 0 ||
	    read_acks(s) < 0)
		return -1;
	if (PQstatus(s->conn) == CONNECTION_OK && s->durable != s->reported)
		send_status(s, 0);
	return report_unacked(s->acked, s->e.lines);
}

/* How long a clean stop waits for the server to end the stream. */
#define END_WAIT_MS 10000

/*
 * After CopyDone the server sends no more changes: what still comes was
 * sent before it saw ours, is not written, and comes again from the slot.
 * 0 once the server ended the COPY, -1 if it did not in time or failed.
 */
static int
drain(struct logical *s)
{
	double until = mono_ms() + END_WAIT_MS;
	char *buf;
	int n;

	while ((n = PQgetCopyData(s->conn, &buf, 1)) != -1) {
		if (n > 0) {
			PQfreemem(buf);
			continue;
		}
		if (n == -2 || mono_ms() >= until)
			return -1;
		{
			struct pollfd p = { PQsocket(s->conn), POLLIN, 0 };

			poll(&p, 1, 100);
		}
		if (PQconsumeInput(s->conn) == 0)
			return -1;
	}
	return 0;
}

void
stream_end(struct logical *s)
{
	PGresult *res;
	int ok;

	if (!s->streaming || PQstatus(s->conn) != CONNECTION_OK)
		return;
	s->streaming = 0;
	ok = PQputCopyEnd(s->conn, NULL) == 1 && PQflush(s->conn) == 0 && drain(s) == 0;
	/* the command's result, so that a last error from the server is not missed */
	while (ok && (res = PQgetResult(s->conn)) != NULL) {
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if (!ok)
		log_warning("the stream did not end cleanly: %s", pg_errmsg(s->conn));
	else
		log_debug("the server ended the stream");
}
