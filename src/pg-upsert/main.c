/*
 * pg-upsert: apply CDC events from standard input to a warehouse table.
 * Each batch commits in one transaction; a change older than the row's guard
 * column never overwrites it, so any replay, duplicate or reordering has the
 * effect of applying each change once.  With --ack it keeps in a file the
 * count of input lines committed (or dead-lettered).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ackfile.h"
#include "backoff.h"
#include "clock.h"
#include "dlq.h"
#include "linereader.h"
#include "log.h"
#include "notify.h"
#include "opt.h"
#include "pgconn.h"
#include "sig.h"
#include "stats.h"
#include "upsert.h"

#define DLQ_KEEP ((size_t)16 << 20)	/* a dead letter keeps at most this much of its line */

struct upsert {
	const struct options *opt;
	PGconn *conn;
	struct router router;
	struct target dlq_table;	/* only its dlq_sql: --dlq-table's statement */
	struct batch batch;	/* the lines in hand */
	struct batch sent;	/* the batch sent, its COMMIT not yet read, when pending */
	int pending;
	struct dlq *dlq;
	unsigned long long lines;	/* input lines committed or dead-lettered */
	unsigned long long applied, dead;
	/* for the reports (--stats, --metrics, systemd's STATUS) */
	struct reporter rep;
	unsigned long long batches, retries;
	double pos;		/* the last pos applied; NAN: none yet */
	double latency_ms;	/* source commit (ts_ms) to this commit, of the last batch's last event */
	struct stats_rate rate;	/* of u->lines */
	char *replay;		/* --replay: the line of the record in hand */
	size_t replay_cap;
};

/*
 * Connect.  The ack file promises the lines are durable, so commits must be
 * flushed before it moves: under synchronous_commit=off a warehouse crash
 * would lose batches already acknowledged, which nothing would send again.
 */
static PQnoticeReceiver notice_next;

/* Notices as libpq shows them, but for the staged path's "already exists, skipping" on each batch. */
static void
notice(void *arg, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state && strcmp(state, "42P07") == 0)
		return;
	notice_next(arg, res);
}

PGconn *
connect_warehouse(const char *conninfo)
{
	PGconn *conn = pg_connect(conninfo);

	/* libpq's own receiver, which prints through the notice processor, takes no argument */
	if (conn)
		notice_next = PQsetNoticeReceiver(conn, notice, NULL);

	if (conn && pg_command(conn, "DO $$ BEGIN IF current_setting('synchronous_commit') = 'off' THEN"
	    " PERFORM set_config('synchronous_commit', 'local', false); END IF; END $$") < 0) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static int
connect_db(struct upsert *u)
{
	u->conn = connect_warehouse(u->opt->conninfo);
	return u->conn ? 0 : -1;
}

static int settle(struct upsert *u);

/*
 * The connection for a statement: first the batch sent is settled, so that
 * nothing (a table looked up, DDL) runs before it commits, nor inside it.
 */
int
router_db(struct router *r, struct backoff *retry, const char *why)
{
	/* the router is the one of struct upsert */
	struct upsert *u = (struct upsert *)(void *)((char *)r - offsetof(struct upsert, router));

	if (u->pending && settle(u) < 0) {
		r->fatal = 1;
		return -1;
	}
	for (;;) {
		if (why) {
			u->retries++;
			if (sig_count >= 2) {
				r->fatal = 1;
				return -1;
			}
			backoff_sleep(retry, why);
		}
		if (*r->conn && !pg_conn_lost(*r->conn))
			return 0;
		PQfinish(*r->conn);
		if ((*r->conn = connect_warehouse(r->opt->conninfo)) != NULL)
			return 0;
		why = "no connection";
	}
}

/*
 * A table changed under the statements (a column dropped): read it again
 * and retry, a few times, as long as the catalog keeps changing.
 */
static int
reload_stale(struct upsert *u, int *reloads)
{
	struct sink *s = batch_stale();

	if (++*reloads > 5) {
		log_error("cannot apply to %s: %s", sink_name(s), batch_error());
		return -1;
	}
	log_warning("table %s changed: %s; reading it again", sink_name(s), batch_error());
	if (sink_reload(&u->router, s) != APPLIED)
		return -1;
	batch_recheck(&u->sent, s);
	batch_recheck(&u->batch, s);
	u->batch.copy_sink = NULL;	/* its COPY text was made for the table as it was */
	return 0;
}

/*
 * Apply the batch, retrying transient failures with backoff until it
 * lands; why: the transient failure of an attempt made already, or NULL.
 */
static int
apply_batch(struct upsert *u, struct batch *b, const char *why)
{
	struct backoff retry = BACKOFF_INIT;
	enum outcome o;
	int reloads = 0;

	for (;;) {
		if (router_db(&u->router, &retry, why) < 0) {
			log_error("second signal: %zu lines not applied", b->n);
			return -1;
		}
		why = NULL;
		o = batch_apply(u->conn, u->dlq_table.dlq_sql, b);
		if (o == APPLIED)
			return 0;
		if (o == FATAL || (o == RELOAD && reload_stale(u, &reloads) < 0))
			return -1;
		if (o == TRANSIENT)
			why = batch_error();
	}
}

/* The batch committed: dead-letter what it refused and move the ack file. */
/* The pos and the commit-to-apply latency of an event applied, for the reports. */
static void
note_applied(struct upsert *u, const struct batch *b, size_t i)
{
	const char *line = LINE_AT(b, i);
	const struct ev *e = &b->ev[i];
	struct timespec now;

	if (e->pos_len > 0)
		u->pos = strtod(line + e->pos, NULL);
	if (e->ts_len > 0) {
		clock_gettime(CLOCK_REALTIME, &now);
		u->latency_ms = (double)now.tv_sec * 1000 + now.tv_nsec / 1e6 - strtod(line + e->ts, NULL);
	}
}

static int
finish_batch(struct upsert *u, struct batch *b)
{
	size_t i;

	router_after_batch(&u->router);
	for (i = 0; i < b->n; i++) {
		if (b->state[i] == LINE_OK) {
			u->applied++;
			if (b->sink[i])
				b->sink[i]->applied++;
			note_applied(u, b, i);
			continue;
		}
		if (b->state[i] == LINE_SKIPPED)
			continue;
		dlq_write_input(u->dlq, b->text + b->off[i], b->len[i], b->why[i], u->lines + i + 1, 0);
		u->dead++;
	}
	if (dlq_flush(u->dlq) < 0)
		return -1;
	u->lines += b->n;
	u->batches++;
	batch_clear(b);
	if (u->opt->ack && ack_write(u->opt->ack, u->lines) < 0) {
		log_error("cannot write ack file \"%s\":", u->opt->ack);
		return -1;
	}
	return 0;
}

/*
 * Read the COMMIT of the batch sent and acknowledge it; when it did not
 * commit (rolled back), apply it as any batch is, retried, split and
 * dead-lettered, before anything else is sent.
 */
static int
settle(struct upsert *u)
{
	enum outcome o;

	if (!u->pending)
		return 0;
	u->pending = 0;
	if ((o = batch_settle(u->conn)) != APPLIED) {
		log_debug("batch of %zu sent ahead not committed: %s; applying it again", u->sent.n, batch_error());
		if (apply_batch(u, &u->sent, o == TRANSIENT ? batch_error() : NULL) < 0)
			return -1;
	}
	return finish_batch(u, &u->sent);
}

/*
 * Commit the batch in hand.  When it can go as one transaction sent at
 * once, its COPY text is made while the batch sent before it commits; then
 * that one is settled and acknowledged, and this one is sent without
 * waiting: the lines after it are read while the server applies it.
 */
static int
flush_batch(struct upsert *u)
{
	struct batch tmp;
	const char *why = NULL;

	if (u->batch.n == 0)
		return settle(u);
	stage_build(&u->batch, u->dlq_table.dlq_sql != NULL);
	if (settle(u) < 0)
		return -1;
	if (u->batch.copy_sink && !pg_conn_lost(u->conn)) {
		if (stage_send(u->conn, &u->batch) == 0) {
			tmp = u->sent;
			u->sent = u->batch;
			u->batch = tmp;
			u->pending = 1;
			/* the next batch looks again for the tables missing in this one, as it would after its commit */
			router_after_batch(&u->router);
			return 0;
		}
		/* the connection lost in the attempt: retried after the warning and the wait, as any attempt */
		why = pg_conn_lost(u->conn) ? batch_error() : NULL;
	}
	if (apply_batch(u, &u->batch, why) < 0)
		return -1;
	return finish_batch(u, &u->batch);
}

/* The batch holds as many lines or bytes as it may. */
static int
batch_full(const struct upsert *u)
{
	return u->batch.n >= u->batch.max || u->batch.used >= (size_t)u->opt->batch_bytes;
}

/*
 * With --ack, a last line without a newline may be the start of a line its
 * writer was killed writing: neither applied nor dead-lettered nor counted,
 * the stage that feeds pg-upsert sends it again, whole.
 */
static int
left_for_redelivery(const struct upsert *u, struct linereader *lr, size_t len, int cut)
{
	if (u->opt->ack == NULL || cut || !lr_unterminated(lr))
		return 0;
	log_warning("input ended inside line %llu (%zu bytes without a newline): not applied,"
	    " not acknowledged, left for redelivery", u->lines + u->sent.n * u->pending + u->batch.n + 1, len);
	return 1;
}

/*
 * --replay: the line a dead-letter record holds, in place of the record;
 * -1 when it holds none: the record is dead-lettered as it is, for why.
 */
static int
replayed(struct upsert *u, const char **line, size_t *len, int *cut)
{
	const char *why = "the record is cut (--batch-bytes)";
	long n = *cut ? -1 : dlq_original(*line, *len, &u->replay, &u->replay_cap, &why);

	if (n < 0) {
		batch_refuse(&u->batch, *line, *len, why);
		return -1;
	}
	*line = u->replay;
	*len = (size_t)n;
	*cut = 0;
	return 0;
}

/* Take the buffered lines into the batch, committing it first when a line would overflow it. */
static int
take_lines(struct upsert *u, struct linereader *lr, double *first)
{
	size_t limit = (size_t)u->opt->batch_bytes, len;
	const char *line;
	int cut;

	while (!batch_full(u) && lr_next(lr, &line, &len, &cut)) {
		if (left_for_redelivery(u, lr, len, cut))
			continue;
		if (u->batch.n > 0 && u->batch.used + len > limit && flush_batch(u) < 0)
			return -1;
		if (u->batch.n == 0)
			*first = mono_ms();
		if (u->opt->replay && replayed(u, &line, &len, &cut) < 0)
			continue;
		/* a schema event's DDL comes after the lines before it commit */
		if (batch_add(&u->batch, &u->router, line, len, cut, limit)) {
			if (flush_batch(u) < 0)
				return -1;
			*first = mono_ms();
			batch_add(&u->batch, &u->router, line, len, cut, limit);
		}
		if (u->router.fatal)
			return -1;
	}
	return 0;
}

/*
 * Wait for input, at most wait ms; the batch sent is acknowledged as soon
 * as its results come (it does not wait for the next batch): -1 when it
 * failed.  in[0].revents: input may be read.
 */
static int
wait_input(struct upsert *u, struct pollfd *in, long wait)
{
	in[0].revents = in[1].revents = 0;
	in[1].fd = u->pending ? PQsocket(u->conn) : -1;
	if (poll(in, 2, wait) <= 0 || in[1].revents == 0)
		return 0;
	if (PQconsumeInput(u->conn) && PQisBusy(u->conn))
		return 0;
	return settle(u);
}

/* The figures of a report (stats.h). */
static void
figures(void *arg, struct figures *f)
{
	struct upsert *u = arg;
	struct sink *s;
	double in = (double)(u->lines + u->sent.n * (size_t)u->pending + u->batch.n);

	fig_add(f, "lines_in", HELP_LINES_IN, 1, in);
	fig_add(f, "lines_acknowledged", HELP_LINES_ACKNOWLEDGED, 1,
	    (double)u->lines);
	fig_add(f, "applied", "Events applied to the warehouse.", 1, (double)u->applied);
	fig_add(f, "dead_lettered", HELP_DEAD_LETTERED, 1, (double)u->dead);
	fig_add(f, "skipped", "Events of unmapped tables skipped (--unmapped=skip).", 1, (double)u->router.skipped);
	fig_add(f, "batches", "Batches committed.", 1, (double)u->batches);
	fig_add(f, "retries", HELP_RETRIES, 1, (double)u->retries);
	fig_add(f, "lines_per_second", HELP_LINES_PER_SECOND, 0,
	    stats_rate(&u->rate, (double)u->lines));
	fig_add(f, "pos", HELP_POS, 0, u->pos);
	fig_add(f, "apply_latency_seconds", "Source commit (ts_ms) to warehouse commit of the last event applied.", 0,
	    u->latency_ms / 1000);
	fig_add(f, "pending_lines", "Lines read but not yet acknowledged.", 0, in - (double)u->lines);
	for (s = u->router.sinks; s != NULL; s = s->next) {
		if (s->applied == 0)
			continue;
		/* its label may have changed since (-t names the table as the catalog does once loaded) */
		free(s->labels);
		s->labels = stats_labels("table", s->label, NULL);
		fig_sample(f, "table_applied", "Events applied to a warehouse table.", 1, (double)s->applied,
		    s->labels, s->label);
	}
}

/* systemd's STATUS= line. */
static void
status_line(void *arg, char *buf, size_t size)
{
	struct upsert *u = arg;

	snprintf(buf, size, "%llu lines acknowledged: %llu applied, %llu dead-lettered; %s%.0f ms behind",
	    u->lines, u->applied, u->dead, isnan(u->latency_ms) ? "" : "last batch ",
	    isnan(u->latency_ms) ? 0 : u->latency_ms);
}

static int
run(struct upsert *u)
{
	/* a line over the bound is dead-lettered: read enough of it to tell whether its record is cut */
	size_t max = (size_t)u->opt->batch_bytes > DLQ_KEEP ? (size_t)u->opt->batch_bytes : DLQ_KEEP + 1;
	struct linereader *lr = lr_open(STDIN_FILENO, max);
	struct pollfd in[2] = { { STDIN_FILENO, POLLIN, 0 }, { -1, POLLIN, 0 } };
	double first = 0;
	int status = 0;
	long wait;

	if (lr == NULL)
		die("out of memory");
	while (!sig_stop) {
		dlq_reopen_if_asked(u->dlq);
		if (reporter_tick(&u->rep) < 0) {
			status = 1;
			break;
		}
		if (take_lines(u, lr, &first) < 0) {
			status = 1;
			break;
		}
		if (lr_done(lr))
			break;
		/* while a batch commits the next one fills: it is sent once that has committed */
		if (batch_full(u) || (u->batch.n > 0 && !u->pending && mono_ms() - first >= u->opt->linger_ms)) {
			if (flush_batch(u) < 0) {
				status = 1;
				break;
			}
			continue;
		}
		wait = u->batch.n > 0 && !u->pending ? (long)(first + u->opt->linger_ms - mono_ms()) + 1 : -1;
		if (wait_input(u, in, reporter_wait(&u->rep, wait)) < 0) {
			status = 1;
			break;
		}
		if (in[0].revents && lr_fill(lr) < 0 && errno != EINTR && errno != EAGAIN) {
			log_error("cannot read standard input:");
			status = 1;
			break;
		}
	}
	/* the batch sent, and (unless that failed) the one in hand, as a signal asks too */
	if ((status == 0 && flush_batch(u) < 0) || settle(u) < 0)
		status = 1;
	lr_close(lr);
	return status;
}

int
main(int argc, char **argv)
{
	struct options opt = {
		.pos_column = "cdc_pos", .batch = 5000, .batch_bytes = 64 << 20, .linger_ms = 0
	};
	struct upsert u = { .opt = &opt };
	int status, lockfd = -1;

	log_init(argv[0]);
	parse_options(argc, argv, &opt);
	sig_install();
	/* first: a second pipeline on the file refuses before it touches anything */
	if (opt.ack && (lockfd = ack_claim(opt.ack, ACK_DOWNSTREAM)) < 0)
		return EXIT_RUNTIME;
	if (connect_db(&u) < 0 || router_init(&u.router, &opt, &u.conn) < 0 ||
	    (opt.dlq_table && dlq_table_load(u.conn, opt.dlq_table, &u.dlq_table) < 0) ||
	    (u.dlq = dlq_open(opt.dlq)) == NULL) {
		router_free(&u.router);
		target_free(&u.dlq_table);
		PQfinish(u.conn);
		return EXIT_RUNTIME;
	}
	dlq_set_limit(u.dlq, DLQ_KEEP);
	batch_init(&u.batch, opt.batch);
	batch_init(&u.sent, opt.batch);
	u.pos = u.latency_ms = NAN;
	stats_rate_start(&u.rate, 0);
	if (reporter_open(&u.rep, "pg-upsert", &opt.stats, &(struct report_ops){ figures, status_line }, &u) < 0)
		status = EXIT_RUNTIME;
	else {
		/* connected, the tables known: what systemd waits for with Type=notify */
		notify("READY=1\nSTATUS=connected, waiting for input");
		status = run(&u);
		/* the last figures, where the reports go */
		if (reporter_final(&u.rep) < 0)
			status = 1;
	}
	notify("STOPPING=1");
	reporter_close(&u.rep);
	log_debug("%llu lines: %llu applied, %llu dead-lettered", u.lines, u.applied, u.dead);
	if (dlq_close(u.dlq) < 0)
		status = 1;
	free(u.replay);
	batch_free(&u.batch);
	batch_free(&u.sent);
	router_free(&u.router);
	target_free(&u.dlq_table);
	PQfinish(u.conn);
	if (lockfd >= 0)
		close(lockfd);
	while (opt.nmaps > 0)
		map_free(&opt.maps[--opt.nmaps]);
	free(opt.maps);
	return status;
}
