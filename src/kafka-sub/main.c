/*
 * kafka-sub: write each message value of Kafka topics as one line of standard
 * output, as a member of a consumer group.  Offsets are committed only for
 * lines written (without --ack) or acknowledged downstream through the ack
 * file (with --ack), so a crash anywhere re-delivers instead of losing.
 * A topic starting with '^' is a pattern: every matching topic, those
 * created later too, is read.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "ackwatch.h"
#include "ackwin.h"
#include "clock.h"
#include "dlq.h"
#include "jsonout.h"
#include "jsonscan.h"
#include "kconf.h"
#include "log.h"
#include "notify.h"
#include "options.h"
#include "sub.h"
#include "sig.h"
#include "stats.h"


/* --origin's member for a partition's messages, up to the offset. */
static char *
origin_member(const char *topic, int32_t partition)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL)
		die("out of memory");
	fputs("\"kafka\":{\"topic\":", f);
	json_put_string(f, topic, strlen(topic));
	fprintf(f, ",\"partition\":%d,\"offset\":", (int)partition);
	if (fclose(f) != 0)
		die("out of memory");
	return buf;
}

/* The index of a partition in parts, added when first seen. */
int
find_part(struct sub *s, const char *topic, int32_t partition)
{
	int i = s->last_part;
	char number[16];

	if (i < s->nparts && s->parts[i].partition == partition && strcmp(s->parts[i].topic, topic) == 0)
		return i;
	for (i = 0; i < s->nparts; i++)
		if (s->parts[i].partition == partition && strcmp(s->parts[i].topic, topic) == 0)
			return s->last_part = i;
	s->parts = realloc(s->parts, (s->nparts + 1) * sizeof *s->parts);
	if (s->parts == NULL || (topic = strdup(topic)) == NULL)
		die("out of memory");
	s->parts[i] = (struct part){ .topic = (char *)topic, .partition = partition,
	    .next = -1, .committed = -1, .read = -1 };
	snprintf(number, sizeof number, "%d", (int)partition);
	s->parts[i].labels = stats_labels("topic", topic, "partition", number, NULL);
	if (asprintf(&s->parts[i].name, "%s/%d", topic, (int)partition) < 0)
		die("out of memory");
	s->parts[i].origin = origin_member(topic, partition);
	return s->nparts++;
}

/* ackwin's pop: the mark's partition is durable up to its offset. */
static void
pop_mark(void *ctx, void *payload)
{
	struct sub *s = ctx;
	struct mark *m = payload;

	/* a line of an earlier assignment: the group's offset has moved on without it */
	if (m->gen == s->parts[m->part].gen)
		s->parts[m->part].next = m->offset + 1;
}

static void
push_mark(struct sub *s, int part, int64_t offset)
{
	struct mark *m = ackwin_push(s->win, s->lines);

	m->part = part;
	m->gen = s->parts[part].gen;
	m->offset = offset;
}

/*
 * Learn what is durable: from the ack file, or everything written without
 * one.  A refused count (ackwin.h) stops the run: nothing is committed on its
 * word, and what was durable before is still committed at exit.
 */
void
read_acks(struct sub *s)
{
	if (ackwin_update(s->win, s->lines, pop_mark, s) < 0)
		s->fatal = 1;
}

/* Commit the durable offsets of owned partitions that moved. */
int
commit(struct sub *s, int sync)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(s->nparts);
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	int i;

	if (dlq_flush(s->dlq) < 0)
		return -1;
	for (i = 0; i < s->nparts; i++) {
		struct part *p = &s->parts[i];

		if (p->owned && p->next > p->committed)
			rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = p->next;
	}
	if (list->cnt > 0) {
		err = rd_kafka_commit(s->rk, list, !sync);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			s->commits++;
			for (i = 0; i < list->cnt; i++)
				s->parts[find_part(s, list->elems[i].topic,
				    list->elems[i].partition)].committed = list->elems[i].offset;
		} else
			log_warning("cannot commit offsets: %s", rd_kafka_err2str(err));
	}
	rd_kafka_topic_partition_list_destroy(list);
	s->last_commit = mono_ms();
	return 0;
}

/*
 * Flush the lines written.  A write error (the reader gone) ends the run,
 * through the normal shutdown: what downstream acknowledged is committed and
 * the group is left at once, so a restarted instance gets the partitions
 * without waiting out the session timeout.
 */
void
flush_out(struct sub *s)
{
	if (s->out_closed || s->out_failed)
		return;
	if (fflush(stdout) != 0) {
		log_error("write error:");
		s->out_failed = 1;
	}
}

/* Wait up to ms for downstream to acknowledge every line written. */
void
wait_acks(struct sub *s, long long ms)
{
	if (ackwin_wait(s->win, s->lines, ms, pop_mark, s, NULL) < 0)
		s->fatal = 1;
}

static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct sub *s = opaque;

	if (kconf_report_error(rk, err, reason))
		s->fatal = 1;
}

static int
all_at_end(const struct sub *s)
{
	int i, owned = 0;

	for (i = 0; i < s->nparts; i++) {
		if (!s->parts[i].owned)
			continue;
		owned++;
		if (!s->parts[i].eof)
			return 0;
	}
	return owned > 0;
}

static int
json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * --origin: write the value v[0..len), valid JSON, with the member "kafka"
 * (the message's topic, partition and offset) added last, before the
 * object's closing brace; a reason when it is no object, which has no place
 * for it.
 */
static const char *
write_origin(const struct part *p, const char *v, size_t len, int64_t offset)
{
	size_t i = 0, end = len;

	while (i < len && json_space(v[i]))
		i++;
	if (i == len || v[i] != '{')
		return "not a JSON object (--origin adds a member to each)";
	while (json_space(v[end - 1]))
		end--;
	end--;			/* the closing brace */
	for (i++; json_space(v[i]); i++)
		;
	fwrite_unlocked(v, 1, end, stdout);
	if (i < end)
		putc_unlocked(',', stdout);
	fputs_unlocked(p->origin, stdout);
	fprintf(stdout, "%" PRId64 "}", offset);
	fwrite_unlocked(v + end, 1, len - end, stdout);
	putc_unlocked('\n', stdout);
	return NULL;
}

/* Write one message as a line, or dead-letter it; tombstones are skipped. */
static void
handle(struct sub *s, rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	int part = find_part(s, topic, m->partition);
	const char *why = NULL;
	char ctx[600];

	s->parts[part].eof = 0;
	s->parts[part].read = m->offset + 1;
	if (m->payload != NULL) {
		why = json_scan_line(m->payload, m->len);
		if (why == NULL && s->opt->origin)
			why = write_origin(&s->parts[part], m->payload, m->len, m->offset);
		else if (why == NULL) {
			/* one thread writes stdout: no lock per call */
			fwrite_unlocked(m->payload, 1, m->len, stdout);
			putc_unlocked('\n', stdout);
		}
		if (why == NULL) {
			s->lines++;
		} else {
			snprintf(ctx, sizeof ctx, ",\"topic\":\"%.500s\",\"partition\":%d,\"offset\":%" PRId64,
			    topic, (int)m->partition, m->offset);
			dlq_write(s->dlq, m->payload, m->len, why, ctx);
		}
	}
	/* without --ack a line is durable once written, and every commit
	 * follows a flush: no mark to push and pop at once */
	if (s->opt->ack)
		push_mark(s, part, m->offset);
	else
		s->parts[part].next = m->offset + 1;
	s->consumed++;
}

static int
done(const struct sub *s)
{
	return sig_stop || s->fatal || s->out_failed || (s->opt->count && s->consumed >= s->opt->count) ||
	    (s->opt->exit_at_end && all_at_end(s));
}

/*
 * A pattern that matches no topic yet is reported as an unknown topic named
 * by the pattern itself: not an error, as the topics of a database's new
 * tables are made while it runs.
 */
static int
pattern_unmatched(const rd_kafka_message_t *m)
{
	return m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && m->rkt != NULL &&
	    rd_kafka_topic_name(m->rkt)[0] == '^';
}
/*
 * Handle up to a batch of the messages already fetched.  Returns how many
 * there were, so the caller waits only when there were none.
 */
static long
consume_batch(struct sub *s, int *status)
{
	rd_kafka_message_t *batch[1024], *m;
	ssize_t n, i, room = 1024;
	size_t before;

	/* no more than the window has room for; paused partitions return nothing,
	 * but rebalances and errors are still served */
	if (s->opt->ack && (ssize_t)s->opt->window - (ssize_t)ackwin_len(s->win) < room)
		room = (ssize_t)s->opt->window - (ssize_t)ackwin_len(s->win);
	before = rd_kafka_queue_length(s->queue);
	n = rd_kafka_consume_batch_queue(s->queue, 0, batch, room > 0 ? room : 1);
	for (i = 0; i < n; i++) {
		m = batch[i];
		if (done(s)) {
			/* not handled: re-delivered after a restart, as its offset is not committed */
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			s->parts[find_part(s, rd_kafka_topic_name(m->rkt), m->partition)].eof = 1;
		} else if (pattern_unmatched(m)) {
			log_debug("%s (waiting for a topic to match)", rd_kafka_message_errstr(m));
		} else if (m->err) {
			log_error("%s", rd_kafka_message_errstr(m));
			if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
			    m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
			    m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
				s->fatal = 1;
				*status = 1;
			}
		} else {
			handle(s, m);
			s->msgs_read++;
			s->bytes_read += m->len;
		}
		rd_kafka_message_destroy(m);
	}
	throttle(s);
	refill(s, before);
	return n > 0 ? n : 0;
}

/*
 * The consumer lag of a partition: its messages after the next one to read,
 * from the high watermark the last fetch brought; NAN when not assigned or
 * not known yet.
 */
static double
part_lag(const struct sub *s, const struct part *p)
{
	int64_t lo, hi;

	if (!p->owned || rd_kafka_get_watermark_offsets(s->rk, p->topic, p->partition, &lo, &hi) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
		return NAN;
	return (double)(hi - (p->read >= 0 ? p->read : lo));
}

/* The figures of a report (stats.h): the lag of each partition, and their sum. */
static void
figures(void *arg, struct figures *f)
{
	struct sub *s = arg;
	double sum = NAN, lag;
	int owned = 0, i, first;

	for (i = 0; i < s->nparts; i++)
		owned += s->parts[i].owned;
	fig_add(f, "messages_in", "Messages consumed from Kafka.", 1, (double)s->consumed);
	fig_add(f, "lines_out", HELP_LINES_OUT, 1, (double)s->lines);
	fig_add(f, "lines_per_second", HELP_LINES_PER_SECOND, 0,
	    stats_rate(&s->rate, (double)s->lines));
	fig_add(f, "lines_acknowledged", HELP_LINES_ACKNOWLEDGED, 1,
	    (double)(s->opt->ack ? ackwin_acked(s->win) : s->lines));
	fig_add(f, "dead_lettered", HELP_DEAD_LETTERED, 1, (double)dlq_count(s->dlq));
	fig_add(f, "commits", "Offset commits the group accepted.", 1, (double)s->commits);
	fig_add(f, "partitions", "Partitions assigned to this member.", 0, owned);
	first = f->n;
	fig_add(f, "consumer_lag", "Messages of the assigned partitions not yet read.", 0, NAN);
	for (i = 0; i < s->nparts; i++) {
		const struct part *p = &s->parts[i];

		if (isnan(lag = part_lag(s, p)))
			continue;
		sum = (isnan(sum) ? 0 : sum) + lag;
		fig_sample(f, "partition_lag", "Messages of an assigned partition not yet read.", 0, lag,
		    p->labels, p->name);
	}
	f->m[first].value = sum;
	/* the position: where the group resumes an assigned partition */
	for (i = 0; i < s->nparts; i++)
		if (s->parts[i].owned && s->parts[i].committed >= 0)
			fig_sample(f, "partition_committed_offset",
			    "The offset the group has committed for an assigned partition: where it resumes.", 0,
			    (double)s->parts[i].committed, s->parts[i].labels, s->parts[i].name);
}

/* systemd's STATUS= line. */
static void
status_line(void *arg, char *buf, size_t size)
{
	struct sub *s = arg;
	double sum = NAN, lag;
	int i;

	for (i = 0; i < s->nparts; i++)
		if (!isnan(lag = part_lag(s, &s->parts[i])))
			sum = (isnan(sum) ? 0 : sum) + lag;
	snprintf(buf, size, "%llu messages read, %" PRIu64 " lines written; %.0f behind",
	    s->consumed, s->lines, isnan(sum) ? 0 : sum);
}

static int
run(struct sub *s, int evfd)
{
	struct pollfd fds[3] = { { evfd, POLLIN, 0 }, { STDOUT_FILENO, 0, 0 }, { s->ackfd, POLLIN, 0 } };
	char drain[64];
	int status = 0;
	long n;

	while (!done(s)) {
		dlq_reopen_if_asked(s->dlq);
		if (reporter_tick(&s->rep) < 0)
			return 1;
		throttle(s);
		n = consume_batch(s, &status);
		flush_out(s);
		/* the room these acks make resumes the partitions before the wait */
		read_acks(s);
		throttle(s);
		if (mono_ms() - s->last_commit >= 100 && commit(s, 0) < 0)
			return 1;
		if (n > 0 || done(s))
			continue;
		if (poll(fds, s->ackfd >= 0 ? 3 : 2, reporter_wait(&s->rep, 1000)) > 0) {
			/* an idle writer learns of a reader gone only this way */
			if (fds[1].revents & (POLLERR | POLLHUP)) {
				log_error("standard output closed by the reader");
				s->out_failed = 1;
			}
			if (fds[0].revents)
				while (read(evfd, drain, sizeof drain) > 0)
					;
			if (s->ackfd >= 0 && fds[2].revents)
				ackwatch_drain(s->ackfd);
		}
	}
	return status;
}

static int
finish(struct sub *s)
{
	int status = 0;

	if (s->opt->ack && !s->out_failed) {
		wait_acks(s, s->opt->ack_timeout_ms);
		if (ackwin_acked(s->win) < s->lines) {
			log_warning("downstream acknowledged %" PRIu64 " of %" PRIu64
			    " lines; the rest will be delivered again", ackwin_acked(s->win), s->lines);
		}
	}
	read_acks(s);
	if (commit(s, 1) < 0)
		status = 1;
	return status;
}

/*
 * Subscribe to the topics and patterns of -t, mixed as given.  librdkafka
 * refuses a pattern it cannot compile (the only invalid argument left after
 * parse_options): a usage error, found only now, with the client made.
 */
static void
subscribe(struct sub *s)
{
	const struct options *o = s->opt;
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(o->ntopics);
	rd_kafka_resp_err_t err;
	int i;

	/*
	 * A handle on each named topic from the start: the group's metadata
	 * then gives its partitions their leaders before they are assigned.
	 * Otherwise an assignment that comes first looks up its start offset
	 * with no leader known, and librdkafka tries again only 500 ms later.
	 */
	if ((s->known = calloc(o->ntopics, sizeof *s->known)) == NULL)
		die("out of memory");
	for (i = 0; i < o->ntopics; i++) {
		rd_kafka_topic_partition_list_add(topics, o->topics[i], RD_KAFKA_PARTITION_UA);
		if (o->topics[i][0] != '^')
			s->known[i] = rd_kafka_topic_new(s->rk, o->topics[i], NULL);
	}
	err = rd_kafka_subscribe(s->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err == RD_KAFKA_RESP_ERR__INVALID_ARG && o->npatterns > 0)
		usage_error("invalid topic pattern among -t (librdkafka regular expressions)");
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("cannot subscribe: %s", rd_kafka_err2str(err));
}

int
main(int argc, char **argv)
{
	struct options opt = { .group = "kafka-sub", .window = 100000, .ack_timeout_ms = 30000 };
	struct sub s = { .opt = &opt, .ackfd = -1 };
	/* static: still reachable when a usage error exits during parsing */
	static rd_kafka_conf_t *conf;
	rd_kafka_queue_t *q;
	static char outbuf[1 << 16];
	char err[512];
	int evpipe[2], status, i;

	log_init(argv[0]);
	conf = default_conf();
	parse_options(argc, argv, &opt, conf);
	sig_install();
	if (opt.lag) {
		/* before the ack file's lock and the dead letters: a look from outside */
		rd_kafka_conf_set_log_cb(conf, kconf_log_cb);
		if ((s.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err)) == NULL)
			die("%s", err);
		status = lag_report(s.rk, &opt);
		rd_kafka_destroy(s.rk);
		free(opt.topics);
		return status;
	}
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	rd_kafka_conf_set_opaque(conf, &s);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, kconf_log_cb);

	/* room for what was fetched before a pause took effect */
	if ((s.win = ackwin_open(opt.ack, sizeof(struct mark), opt.window + 65536)) == NULL) {
		free(opt.topics);
		return EXIT_RUNTIME;
	}
	s.ackfd = ackwin_fd(s.win);
	if ((s.dlq = dlq_open(opt.dlq)) == NULL) {
		ackwin_free(s.win, NULL, NULL);
		free(opt.topics);
		return EXIT_RUNTIME;
	}
	if ((s.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err)) == NULL)
		die("%s", err);
	rd_kafka_poll_set_consumer(s.rk);
	prefetch_limits(&s);
	kconf_log_settings(s.rk, (const char *const[]){ "queued.min.messages",
	    "queued.max.messages.kbytes", "fetch.wait.max.ms", "fetch.message.max.bytes",
	    "fetch.max.bytes", "fetch.min.bytes", NULL });
	if (pipe2(evpipe, O_NONBLOCK | O_CLOEXEC) < 0)
		die("pipe:");
	q = s.queue = rd_kafka_queue_get_consumer(s.rk);
	rd_kafka_queue_io_event_enable(q, evpipe[1], "1", 1);

	subscribe(&s);
	stats_rate_start(&s.rate, 0);
	if (reporter_open(&s.rep, "kafka-sub", &opt.stats, &(struct report_ops){ figures, status_line }, &s) < 0)
		s.fatal = 1;
	else
		notify("READY=1\nSTATUS=subscribed, waiting for partitions");

	status = run(&s, evpipe[0]);
	flush_out(&s);
	if (s.fatal || s.out_failed)
		status = 1;
	if (fclose(stdout) != 0 && !s.out_failed) {
		log_error("write error:");
		status = 1;
	}
	s.out_closed = 1;
	if (finish(&s) != 0)
		status = 1;
	if (reporter_final(&s.rep) < 0)
		status = 1;
	reporter_close(&s.rep);
	notify("STOPPING=1");
	rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
	rd_kafka_queue_destroy(q);
	rd_kafka_consumer_close(s.rk);	/* the last revoke commits again: nothing new */
	for (i = 0; i < opt.ntopics; i++)
		if (s.known[i] != NULL)
			rd_kafka_topic_destroy(s.known[i]);
	free(s.known);
	rd_kafka_destroy(s.rk);
	if (dlq_close(s.dlq) < 0)
		status = 1;
	close(evpipe[0]);
	close(evpipe[1]);
	for (i = 0; i < s.nparts; i++) {
		free(s.parts[i].topic);
		free(s.parts[i].labels);
		free(s.parts[i].origin);
		free(s.parts[i].name);
	}
	free(s.parts);
	ackwin_free(s.win, NULL, NULL);
	free(opt.topics);
	return status;
}
