/*
 * kafka-pub: publish each line of standard input as one Kafka message, the
 * value byte for byte, keyed by a JSON field.  With --ack it keeps in a file
 * the count of leading input lines that are durable: delivered to Kafka
 * (acks=all, idempotent producer) or written to the dead-letter output.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "ackfile.h"
#include "clock.h"
#include "dlq.h"
#include "jsonscan.h"
#include "kconf.h"
#include "linereader.h"
#include "log.h"
#include "opt.h"
#include "sig.h"

#define MAX_LINE	(64u << 20)	/* longer input lines are dead-lettered, cut to this */
#define MAX_KEY		(64u << 10)
#define RING		(1u << 20)	/* most lines in flight: the backpressure bound */

static const char usage_text[] =
"Usage: kafka-pub [OPTION]... -t TOPIC\n"
"Publish each line of standard input as one Kafka message.\n"
"\n"
"Options:\n"
"  -b, --brokers=LIST      bootstrap brokers (default: $KAFKA_BROKERS, else localhost:9092)\n"
"  -t, --topic=TOPIC       topic to publish to (required)\n"
"  -k, --key=FIELD         key each message by this top-level JSON field\n"
"  -X, --property=KEY=VALUE  librdkafka property (repeatable)\n"
"  -F, --config=FILE       librdkafka properties file (key=value lines)\n"
"      --ack=FILE          keep the count of leading lines made durable in FILE\n"
"      --dlq=FILE          append dead letters to FILE (default: stderr)\n"
"  -v, --verbose           more diagnostics\n"
"  -q, --quiet             errors only\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n";

struct options {
	const char *topic;
	const char *key;
	const char *ack;
	const char *dlq;
};

struct pub {
	const struct options *opt;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	struct dlq *dlq;
	unsigned char *done;	/* ring: line delivered or dead-lettered */
	uint64_t next;		/* lines read so far */
	uint64_t acked;		/* leading lines durable */
	uint64_t ack_written;
	uint64_t delivered, undelivered;
	rd_kafka_resp_err_t first_err;
	int fatal;
	long timeout_ms;	/* message.timeout.ms */
};

/* Line seq is durable: advance the count of leading durable lines. */
static void
mark_done(struct pub *p, uint64_t seq)
{
	p->done[seq % RING] = 1;
	while (p->acked < p->next && p->done[p->acked % RING]) {
		p->done[p->acked % RING] = 0;
		p->acked++;
	}
}

static void
dead_letter(struct pub *p, uint64_t seq, const char *line, size_t len, const char *why, int cut)
{
	char ctx[64];

	snprintf(ctx, sizeof ctx, ",\"input_line\":%" PRIu64 "%s", seq + 1,
	    cut ? ",\"truncated\":true" : "");
	dlq_write(p->dlq, line, len, why, ctx);
	mark_done(p, seq);
}

static int
too_large(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	    err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
	    err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/*
 * The copies of one line produced to every partition.  left counts the
 * delivery reports still to come, plus one the producing loop holds until it
 * is done, so the struct outlives the loop.
 */
struct copies {
	uint64_t seq;
	int left;
	int abandoned;			/* a signal stopped it before every copy was produced */
	rd_kafka_resp_err_t err;	/* the first copy that failed */
};

/* A message's opaque: its line's number tagged with the low bit, else its struct copies. */
#define LINE_OPAQUE(seq)	((void *)(uintptr_t)((seq) << 1 | 1))

/* Line seq is delivered (err 0), too large for Kafka (dead-lettered), or lost for good. */
static void
line_reported(struct pub *p, uint64_t seq, rd_kafka_resp_err_t err, const void *payload, size_t len)
{
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		p->delivered++;
		mark_done(p, seq);
	} else if (too_large(err)) {
		dead_letter(p, seq, payload, len, rd_kafka_err2str(err), 0);
	} else {
		if (p->undelivered++ == 0) {
			p->first_err = err;
			log_error("line %" PRIu64 " not delivered: %s", seq + 1, rd_kafka_err2str(err));
		}
		p->fatal = 1;	/* the count can never pass this line: stop reading */
	}
}

/* One copy is reported (or will never be sent); the last one reports the line. */
static void
copy_reported(struct pub *p, struct copies *c, rd_kafka_resp_err_t err, const void *payload, size_t len)
{
	if (err && !c->err)
		c->err = err;
	if (--c->left > 0)
		return;
	if (!c->abandoned)
		line_reported(p, c->seq, c->err, payload, len);
	free(c);
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct pub *p = opaque;
	uintptr_t tag = (uintptr_t)m->_private;

	(void)rk;
	if (tag & 1)
		line_reported(p, tag >> 1, m->err, m->payload, m->len);
	else
		copy_reported(p, (struct copies *)tag, m->err, m->payload, m->len);
}

static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct pub *p = opaque;

	if (kconf_report_error(rk, err, reason))
		p->fatal = 1;
}

/* Write the ack count when it moved; dead letters are flushed first. */
static int
update_ack(struct pub *p)
{
	if (p->opt->ack == NULL || p->acked == p->ack_written)
		return 0;
	if (dlq_flush(p->dlq) < 0)
		return -1;
	if (ack_write(p->opt->ack, p->acked) < 0) {
		log_error("cannot write ack file \"%s\":", p->opt->ack);
		return -1;
	}
	p->ack_written = p->acked;
	return 0;
}

/* Produce one message, waiting while the queue is full; QUEUE_FULL back means a signal came. */
static rd_kafka_resp_err_t
produce(struct pub *p, const char *line, size_t len, const char *key, size_t klen,
    int32_t partition, void *opaque)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		err = rd_kafka_producev(p->rk,
		    RD_KAFKA_V_RKT(p->rkt),
		    RD_KAFKA_V_PARTITION(partition),
		    RD_KAFKA_V_VALUE((void *)line, len),
		    RD_KAFKA_V_KEY(key, klen),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_OPAQUE(opaque),
		    RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || sig_stop)
			return err;
		rd_kafka_poll(p->rk, 100);	/* backpressure: wait for deliveries */
	}
}

/*
 * The topic's partition count.  A topic the request auto-creates may take a
 * few tries; the cluster gets message.timeout.ms to answer, as a delivery
 * does.  -1 after logging.
 */
static int
partition_count(struct pub *p)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;
	double start = mono_ms();
	int n;

	for (;;) {
		n = 0;
		if ((err = rd_kafka_metadata(p->rk, 0, p->rkt, &md, 5000)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (md->topic_cnt == 1 && (err = md->topics[0].err) == RD_KAFKA_RESP_ERR_NO_ERROR)
				n = md->topics[0].partition_cnt;
			rd_kafka_metadata_destroy(md);
		}
		if (n > 0)
			return n;
		if (sig_stop || mono_ms() - start >= p->timeout_ms)
			break;
		rd_kafka_poll(p->rk, 200);
	}
	log_error("cannot learn the partitions of topic \"%s\": %s", p->opt->topic,
	    rd_kafka_err2str(err ? err : RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION));
	return -1;
}

/*
 * A line whose key field is null (a truncate) concerns every key: a copy goes
 * to every partition, after every earlier line is delivered so that each
 * partition has it behind the lines before it.  The line is durable once
 * every copy is.
 */
static void
publish_everywhere(struct pub *p, uint64_t seq, const char *line, size_t len)
{
	struct copies *c;
	rd_kafka_resp_err_t err;
	int n, i;

	while (p->acked < seq && !p->fatal && !sig_stop)
		rd_kafka_poll(p->rk, 100);
	if (p->fatal || sig_stop)
		return;	/* never acknowledged, so sent again after a restart */
	if ((n = partition_count(p)) < 0) {
		p->undelivered++;
		p->fatal = 1;
		return;
	}
	if ((c = calloc(1, sizeof *c)) == NULL)
		die("out of memory");
	c->seq = seq;
	c->left = n + 1;
	for (i = 0; i < n; i++) {
		err = produce(p, line, len, NULL, 0, i, c);
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			c->abandoned = 1;
			c->left -= n - i;
			break;
		}
		if (err)
			copy_reported(p, c, err, line, len);
	}
	copy_reported(p, c, RD_KAFKA_RESP_ERR_NO_ERROR, line, len);
}

/* Produce one input line (sequence seq); invalid ones go to the dead letters. */
static void
publish(struct pub *p, const char *line, size_t len, int cut)
{
	uint64_t seq = p->next++;
	char key[MAX_KEY];
	const char *why, *val = NULL;
	size_t vlen = 0;
	long klen = 0;
	rd_kafka_resp_err_t err;

	if (cut) {
		dead_letter(p, seq, line, len, "line too long", 1);
		return;
	}
	if ((why = json_scan(line, len, p->opt->key, &val, &vlen)) != NULL) {
		dead_letter(p, seq, line, len, why, 0);
		return;
	}
	if (p->opt->key) {
		if (val == NULL) {
			dead_letter(p, seq, line, len, "no key field", 0);
			return;
		}
		if (vlen == 4 && memcmp(val, "null", 4) == 0) {
			publish_everywhere(p, seq, line, len);
			return;
		}
		if ((klen = json_key_text(val, vlen, key, sizeof key)) < 0) {
			dead_letter(p, seq, line, len, "key too long", 0);
			return;
		}
	}
	err = produce(p, line, len, p->opt->key ? key : NULL, (size_t)klen, RD_KAFKA_PARTITION_UA,
	    LINE_OPAQUE(seq));
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return;	/* a signal: never acknowledged, so sent again after a restart */
	if (too_large(err))
		dead_letter(p, seq, line, len, rd_kafka_err2str(err), 0);
	else if (err) {
		log_error("cannot produce line %" PRIu64 ": %s", seq + 1, rd_kafka_err2str(err));
		p->undelivered++;
		p->fatal = 1;
	}
}

static void
parse_options(int argc, char **argv, struct options *o, rd_kafka_conf_t *conf)
{
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 'k' },
		{ "property", required_argument, NULL, 'X' },
		{ "config", required_argument, NULL, 'F' },
		{ "ack", required_argument, NULL, 'A' },
		{ "dlq", required_argument, NULL, 'D' },
		OPT_GENERAL_LONG
	};
	const char *brokers = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":b:t:k:X:F:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': brokers = optarg; break;
		case 't': o->topic = optarg; break;
		case 'k': o->key = optarg; break;
		case 'X': kconf_set(conf, "-X", optarg); break;
		case 'F': kconf_file(conf, optarg); break;
		case 'A': o->ack = optarg; break;
		case 'D': o->dlq = optarg; break;
		default: opt_general(c, argv, usage_text);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (o->topic == NULL || *o->topic == '\0')
		usage_error("no topic given (use -t TOPIC)");
	if (o->key && *o->key == '\0')
		usage_error("--key needs a field name");
	if (o->ack && *o->ack == '\0')
		usage_error("--ack needs a file name");
	kconf_brokers(conf, brokers);
}

static rd_kafka_conf_t *
default_conf(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	/* acks=all with an idempotent producer: no loss, no duplicates from retries */
	kconf_set(conf, "default", "enable.idempotence=true");
	kconf_set(conf, "default", "acks=all");
	/* the partitioner Java clients use, so keys land where theirs do */
	kconf_set(conf, "default", "partitioner=murmur2_random");
	kconf_set(conf, "default", "linger.ms=5");
	return conf;
}

/* message.timeout.ms: how long a delivery may take, and so a partition look-up. */
static long
message_timeout(rd_kafka_t *rk)
{
	char buf[32];
	size_t size = sizeof buf;
	long ms;

	if (rd_kafka_conf_get(rd_kafka_conf(rk), "message.timeout.ms", buf, &size) != RD_KAFKA_CONF_OK)
		return 300000;
	ms = strtol(buf, NULL, 10);
	return ms > 0 ? ms : LONG_MAX;	/* 0: no limit */
}

/* Wait for input or delivery reports and serve the reports; true when input is ready. */
static int
wait_events(struct pub *p, int evfd, int want_input, int ms)
{
	struct pollfd fds[2] = { { evfd, POLLIN, 0 }, { STDIN_FILENO, POLLIN, 0 } };
	char drain[64];
	int n = poll(fds, want_input ? 2 : 1, ms);

	if (n > 0 && fds[0].revents)
		while (read(evfd, drain, sizeof drain) > 0)
			;
	rd_kafka_poll(p->rk, 0);
	return n > 0 && want_input && fds[1].revents;
}

static int
run(struct pub *p, int evfd)
{
	struct linereader *lr = lr_open(STDIN_FILENO, MAX_LINE);
	const char *line;
	size_t len;
	int cut, status = 0;
	long n;

	if (lr == NULL)
		die("out of memory");
	while (!sig_stop && !p->fatal && !lr_done(lr)) {
		if (p->next - p->acked >= RING) {
			wait_events(p, evfd, 0, 100);
			continue;
		}
		if (wait_events(p, evfd, 1, 1000)) {
			n = lr_fill(lr);
			if (n < 0 && errno != EINTR && errno != EAGAIN) {
				log_error("cannot read standard input:");
				status = 1;
				break;
			}
		}
		while (!p->fatal && p->next - p->acked < RING && lr_next(lr, &line, &len, &cut))
			publish(p, line, len, cut);
		if (update_ack(p) < 0) {
			status = 1;
			break;
		}
	}
	lr_close(lr);
	return status;
}

/* Deliver everything in flight: librdkafka reports each message within message.timeout.ms. */
static int
flush_all(struct pub *p)
{
	while (rd_kafka_outq_len(p->rk) > 0) {
		rd_kafka_flush(p->rk, 100);
		if (update_ack(p) < 0)
			return -1;
		if (sig_count >= 2) {
			log_error("second signal: %d messages abandoned", rd_kafka_outq_len(p->rk));
			rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
			rd_kafka_poll(p->rk, 0);
			return -1;
		}
	}
	return update_ack(p);
}

int
main(int argc, char **argv)
{
	struct options opt = { 0 };
	struct pub p = { .opt = &opt };
	/* static: still reachable when a usage error exits during parsing */
	static rd_kafka_conf_t *conf;
	rd_kafka_queue_t *mainq;
	char err[512];
	int evpipe[2], status, lockfd = -1;

	log_init(argv[0]);
	conf = default_conf();
	parse_options(argc, argv, &opt, conf);
	sig_install();
	/* first: a second pipeline on the file refuses before it touches anything */
	if (opt.ack && (lockfd = ack_claim(opt.ack, ACK_DOWNSTREAM)) < 0)
		return EXIT_RUNTIME;
	rd_kafka_conf_set_opaque(conf, &p);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, kconf_log_cb);

	if ((p.done = calloc(RING, 1)) == NULL)
		die("out of memory");
	if ((p.dlq = dlq_open(opt.dlq)) == NULL)
		exit(EXIT_RUNTIME);	/* what main holds is still reachable */
	if ((p.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err)) == NULL)
		die("%s", err);
	p.rkt = rd_kafka_topic_new(p.rk, opt.topic, NULL);
	p.timeout_ms = message_timeout(p.rk);
	if (pipe2(evpipe, O_NONBLOCK | O_CLOEXEC) < 0)
		die("pipe:");
	mainq = rd_kafka_queue_get_main(p.rk);
	rd_kafka_queue_io_event_enable(mainq, evpipe[1], "1", 1);

	status = run(&p, evpipe[0]);
	if (flush_all(&p) < 0 || rd_kafka_fatal_error(p.rk, NULL, 0))
		status = 1;
	if (p.undelivered > 0) {
		log_error("%" PRIu64 " of %" PRIu64 " lines not delivered (%s)",
		    p.undelivered, p.next, rd_kafka_err2str(p.first_err));
		status = 1;
	}
	log_debug("%" PRIu64 " lines: %" PRIu64 " delivered, %llu dead-lettered",
	    p.next, p.delivered, dlq_count(p.dlq));
	if (dlq_close(p.dlq) < 0)
		status = 1;
	rd_kafka_topic_destroy(p.rkt);
	rd_kafka_queue_io_event_enable(mainq, -1, NULL, 0);
	rd_kafka_queue_destroy(mainq);
	rd_kafka_destroy(p.rk);
	close(evpipe[0]);
	close(evpipe[1]);
	free(p.done);
	if (lockfd >= 0)
		close(lockfd);
	return status;
}
