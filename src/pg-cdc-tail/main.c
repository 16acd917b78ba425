/*
 * pg-cdc-tail: emit the committed changes of captured tables as CDC events,
 * one JSON object per line, resuming after any crash from the position its
 * consumer stored in the source database.
 */
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ackwatch.h"
#include "ackwin.h"
#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "opt.h"
#include "pgconn.h"
#include "sig.h"
#include "tail.h"


/*
 * Hold the consumer's session lock, so that a second tail under the same name
 * refuses to start.  A predecessor killed a moment ago may still have its
 * session: it gets 10 s to end.  0, 1 when the name is in use (after an error
 * message), -1 on a database error.
 */
static int
lock_consumer(struct tail *s)
{
	double start = mono_ms();
	long pid = 0;
	int n;

	while ((n = consumer_lock(s->conn, s->opt->name, &pid)) == 0) {
		if (mono_ms() - start >= 10000 || sig_stop) {
			log_error("consumer \"%s\" is in use by another pg-cdc-tail (server process %ld)",
			    s->opt->name, pid);
			return 1;
		}
		sleep_ms(200);
	}
	return n < 0 ? -1 : 0;
}

/* Connect; with --follow keep trying with backoff until it works or a signal comes. */
static int
connect_source(struct tail *s)
{
	struct backoff b = BACKOFF_INIT;
	int n;

	for (;;) {
		s->conn = pg_connect(s->opt->conninfo);
		s->listening = 0;
		if (s->conn && session_setup(s) == 0 &&
		    (!s->opt->follow || pg_command(s->conn, "LISTEN pgcdc") == 0) &&
		    (n = lock_consumer(s)) >= 0) {
			s->listening = s->opt->follow;
			return n == 0 ? 0 : -1;
		}
		PQfinish(s->conn);
		s->conn = NULL;
		if (!s->opt->follow || sig_stop)
			return -1;
		backoff_sleep(&b, NULL);
		if (sig_stop)
			return -1;
	}
}

/* After a failed operation: reconnect if the connection was lost and we follow. */
int
recover(struct tail *s)
{
	if (!pg_conn_lost(s->conn))
		return -1;
	if (!s->opt->follow) {
		log_error("connection lost: %s", pg_errmsg(s->conn));
		return -1;
	}
	log_warning("connection lost: %s; reconnecting", pg_errmsg(s->conn));
	s->reconnects++;
	PQfinish(s->conn);
	s->conn = NULL;
	return connect_source(s);
}

/* Learn what the downstream has made durable; -1 once the ack file was refused. */
static int
read_acks(struct tail *s)
{
	return s->e.win ? window_update(s->e.win, s->e.lines, s->want, s->moved) : 0;
}

static int
maybe_prune(struct tail *s, int now)
{
	int i;

	if (!s->opt->prune || (!now && mono_ms() - s->last_prune < 1000))
		return 0;
	s->last_prune = mono_ms();
	for (i = 0; i < s->ntables; i++)
		if (prune_log(s->conn, &s->tables[i]) < 0)
			return -1;
	return 0;
}

/* An idle writer learns of a reader gone only this way: POLLERR on the pipe. */
static void
check_reader(const struct pollfd *out)
{
	if (out->revents & (POLLERR | POLLHUP))
		die("standard output closed by the reader");
}

/* Wait until the ack file changes or ms pass. */
static void
wait_ack(struct tail *s, long ms)
{
	struct pollfd p[2] = { { STDOUT_FILENO, 0, 0 }, { s->ackfd, POLLIN, 0 } };

	if (poll(p, s->ackfd >= 0 ? 2 : 1, ms) > 0) {
		check_reader(&p[0]);
		if (p[1].revents)
			ackwatch_drain(s->ackfd);
	}
}

/* emitter.room: lines that may be written before the window is full. */
static long
room(struct emitter *e)
{
	struct tail *s = (struct tail *)e;
	uint64_t out;

	if (s->e.win == NULL)
		return LONG_MAX;
	for (;;) {
		if (read_acks(s) < 0)
			return 0;
		out = s->e.lines - ackwin_acked(s->e.win);
		if (out < (uint64_t)s->opt->window)
			return s->opt->window - out;
		if (sig_stop)
			return 0;
		if (sync_positions(s) < 0 || reporter_tick(&s->rep) < 0)
			return 0;
		wait_ack(s, 100);
	}
}

/*
 * Consume the notifications received: whether there were any.  One from
 * cdc.enable() (payload "cdc.enable:schema.table") asks for a look for new
 * tables.
 */
static int
take_notifies(struct tail *s)
{
	PGnotify *n;
	int any = 0;

	while ((n = PQnotifies(s->conn)) != NULL) {
		if (strncmp(n->extra, "cdc.enable:", 11) == 0)
			s->rescan = 1;
		PQfreemem(n);
		any = 1;
	}
	return any;
}

/* Sleep until a change is notified, the ack file moves, or ms pass. */
static void
wait_for_work(struct tail *s, long ms)
{
	struct pollfd p[3] = {
		{ PQsocket(s->conn), POLLIN, 0 }, { STDOUT_FILENO, 0, 0 }, { s->ackfd, POLLIN, 0 }
	};

	PQconsumeInput(s->conn);
	if (take_notifies(s) || poll(p, s->ackfd >= 0 ? 3 : 2, ms) <= 0)
		return;
	check_reader(&p[1]);
	if (p[2].revents)
		ackwatch_drain(s->ackfd);
	PQconsumeInput(s->conn);
	take_notifies(s);
}

static int
all_done(const struct tail *s)
{
	int i;

	for (i = 0; i < s->ntables; i++)
		if (!s->tables[i].done)
			return 0;
	return 1;
}

/*
 * One round over the tables: start a batch where none is in progress, write
 * one page of each.  Returns the lines written, or -1 on a database error.
 */
static long
round_once(struct tail *s)
{
	char *snap = NULL;
	long total = 0, n, limit;
	int i;

	for (i = 0; i < s->ntables && !sig_stop; i++) {
		struct table *t = &s->tables[i];

		if (t->done)
			continue;
		if (t->cur.hi == NULL) {
			if (!s->opt->follow && t->final_batch) {
				t->done = 1;
				continue;
			}
			if (snap == NULL && (snap = round_snapshot(s)) == NULL)
				return -1;
			t->final_batch = 1;
			if (t->cur.lo && strcmp(t->cur.lo->text, snap) == 0) {
				t->done = !s->opt->follow;
				continue;
			}
			t->cur.hi = snap_new(snap);
		}
		limit = room(&s->e);
		if (limit <= 0)
			break;
		s->e.index = i;
		n = emit_page(s->conn, t, &s->e, limit < s->opt->batch ? limit : s->opt->batch);
		if (n < 0) {
			free(snap);
			return -1;
		}
		log_debug("%s: %ld rows, position %s %s %" PRId64, t->name, n,
		    t->cur.lo ? t->cur.lo->text : "-", t->cur.hi ? t->cur.hi->text : "-", t->cur.last);
		total += n;
	}
	free(snap);
	return total;
}

/* Is a table in the middle of a batch, with pages left to read at once? */
static int
mid_batch(const struct tail *s)
{
	int i;

	for (i = 0; i < s->ntables; i++)
		if (!s->tables[i].done && s->tables[i].cur.hi != NULL)
			return 1;
	return 0;
}

/*
 * After a round that wrote n lines: will the next one open with
 * round_snapshot(), which stores the positions due?  It will when lines came
 * (another round follows at once) and no table is in the middle of a batch.
 */
static int
next_round_stores(const struct tail *s, long n)
{
	return n > 0 && !sig_stop && !mid_batch(s);
}

/*
 * Following, a round opens at most every ROUND_GAP_MS: under a steady stream
 * of commits, each of which notifies, the tail would otherwise start a round
 * for every few changes, and each costs the source two statements.  A change
 * committed just after a round opened waits up to that much longer; one
 * after a quiet spell goes out at once.  The notifications of what the next
 * snapshot will see anyway are consumed first, so that they do not start
 * another round.
 */
static void
pace(struct tail *s)
{
	double left = s->last_round + ROUND_GAP_MS - mono_ms();
	struct pollfd p[2] = { { STDOUT_FILENO, 0, 0 }, { s->ackfd, POLLIN, 0 } };

	if (!s->opt->follow || mid_batch(s))
		return;
	while (left > 0 && !sig_stop) {
		if (poll(p, s->ackfd >= 0 ? 2 : 1, (int)left + 1) > 0) {
			check_reader(&p[0]);
			if (p[1].revents)
				ackwatch_drain(s->ackfd);
		}
		left = s->last_round + ROUND_GAP_MS - mono_ms();
	}
	PQconsumeInput(s->conn);
	take_notifies(s);
	s->last_round = mono_ms();
}

/*
 * Following, after a round that wrote n lines: listen for notifications
 * only while idle.  A busy tail opens a round every ROUND_GAP_MS anyway, and
 * a session that listens is signalled at every commit of a captured change,
 * and made to pass each notification on.  So the first round that finds
 * changes stops listening; the first that finds none listens again, and
 * another round follows at once, for what committed before the LISTEN.
 * Tables enabled meanwhile are found by the look every --poll interval.
 */
static int
listen_while_idle(struct tail *s, long n)
{
	int want = n == 0;

	if (want == s->listening || mid_batch(s))
		return 0;
	if (pg_command(s->conn, want ? "LISTEN pgcdc" : "UNLISTEN pgcdc") < 0)
		return -1;
	s->listening = want;
	return 0;
}

/* How long to sleep: the poll interval, or less until the next look for new tables. */
static long
next_wait(const struct tail *s)
{
	double left = s->last_scan + s->opt->poll_ms - mono_ms();

	if (!s->opt->dynamic || left >= s->opt->poll_ms)
		return s->opt->poll_ms;
	return left > 0 ? (long)left + 1 : 0;
}

static int
run(struct tail *s)
{
	long n;

	if (s->opt->snapshot && take_snapshots(s) < 0)
		return -1;
	while (!sig_stop && (!all_done(s) || (s->opt->follow && s->opt->dynamic))) {
		if (reporter_tick(&s->rep) < 0)
			return -1;
		if (tables_rescan(s) < 0) {
			if (recover(s) < 0)
				return -1;
			continue;
		}
		pace(s);
		n = round_once(s);
		if (fflush(stdout) != 0)
			die("write error:");
		if (read_acks(s) < 0)
			return -1;
		if (n < 0 || (!next_round_stores(s, n) && sync_positions(s) < 0) ||
		    maybe_prune(s, 0) < 0) {
			if (recover(s) < 0)
				return -1;
			continue;
		}
		if (!s->opt->follow || sig_stop)
			continue;
		if (listen_while_idle(s, n) < 0) {
			if (recover(s) < 0)
				return -1;
			continue;
		}
		if (n == 0 && s->listening)
			wait_for_work(s, reporter_wait(&s->rep, next_wait(s)));
	}
	return 0;
}

/* window_wait's tick: store what moved meanwhile. */
static int
store_tick(void *ctx)
{
	struct tail *s = ctx;

	if (reporter_tick(&s->rep) < 0)
		return -1;
	return sync_positions(s) < 0 && recover(s) < 0 ? -1 : 0;
}

/*
 * Before exiting: wait (up to --ack-timeout, or a second signal) for the
 * downstream to acknowledge what was written, and store the final positions.
 */
static int
finish(struct tail *s)
{
	if (s->e.win && window_wait(s->e.win, s->e.lines, s->opt->ack_timeout_ms,
	    s->want, s->moved, store_tick, s) < 0)
		return -1;
	if (sync_positions(s) < 0 || maybe_prune(s, 1) < 0)
		return -1;
	return s->e.win ? report_unacked(ackwin_acked(s->e.win), s->e.lines) : 0;
}

int
report_unacked(uint64_t acked, uint64_t lines)
{
	if (acked == lines)
		return 0;
	if (!sig_stop) {
		log_error("downstream acknowledged %" PRIu64 " of %" PRIu64
		    " lines; the rest will be sent again", acked, lines);
		return -1;
	}
	log_warning("downstream acknowledged %" PRIu64 " of %" PRIu64
	    " lines; the rest will be sent again", acked, lines);
	return 0;
}

static int
setup(struct tail *s)
{
	if (s->opt->ack) {
		/* a mark per line, and per table one more at a batch's end and the snapshot */
		s->e.win = window_new(s->opt->ack, s->opt->window + 2 * MAX_TABLES + 16);
		if (s->e.win == NULL)
			return -1;
		s->ackfd = ackwin_fd(s->e.win);
	}
	if (connect_source(s) < 0 || tables_setup(s) < 0)
		return -1;
	report_ready(s);
	return 0;
}

int
main(int argc, char **argv)
{
	struct options opt = {
		.name = "pg-cdc-tail", .poll_ms = 1000, .batch = 5000,
		.window = 100000, .ack_timeout_ms = 30000
	};
	struct tail s = { .opt = &opt, .ackfd = -1 };
	static char outbuf[1 << 16];
	int status, i;

	log_init(argv[0]);
	parse_options(argc, argv, &opt);
	sig_install();
	if (opt.logical) {
		status = opt.drop_slot ? logical_drop_slot(&opt) : logical_run(&opt);
		free(opt.tables);
		return status ? EXIT_RUNTIME : EXIT_OK;
	}
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	s.e.out = stdout;
	s.e.schema_events = opt.schema_events;
	s.e.room = room;

	if (report_open(&s) < 0) {
		free(opt.tables);
		return EXIT_RUNTIME;
	}
	status = setup(&s) < 0 || run(&s) < 0;
	if (fflush(stdout) != 0 || (!opt.follow && fclose(stdout) != 0))
		die("write error:");
	if (status == 0 && finish(&s) < 0)
		status = 1;
	if (report_close(&s) < 0)
		status = 1;

	for (i = 0; i < s.ntables; i++) {
		table_free(&s.tables[i]);
		pos_clear(&s.want[i]);
	}
	free(s.tables);
	free(s.want);
	free(s.moved);
	free(opt.tables);
	window_free(s.e.win);
	PQfinish(s.conn);
	if (opt.follow && fclose(stdout) != 0 && status == 0)
		die("write error:");
	return status ? EXIT_RUNTIME : EXIT_OK;
}
