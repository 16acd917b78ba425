/*
 * kafka-pub: publish each line of standard input as one Kafka message, the
 * value byte for byte, keyed by a JSON field.  With --ack it keeps in a file
 * the count of leading input lines that are durable: delivered to Kafka
 * (acks=all, idempotent producer) or written to the dead-letter output.
 * With --topic-prefix each line goes to the topic of its "table" member.
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
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "ackfile.h"
#include "dlq.h"
#include "jsonscan.h"
#include "kconf.h"
#include "linereader.h"
#include "log.h"
#include "opt.h"
#include "pub.h"
#include "sig.h"
#include "topics.h"

#define MAX_LINE	(64u << 20)	/* longer input lines are dead-lettered, cut to this */

static const char usage_text[] =
"Usage: kafka-pub [OPTION]... -t TOPIC\n"
"  or:  kafka-pub [OPTION]... --topic-prefix=PREFIX\n"
"Publish each line of standard input as one Kafka message.\n"
"\n"
"Options:\n"
"  -b, --brokers=LIST      bootstrap brokers (default: $KAFKA_BROKERS, else localhost:9092)\n"
"  -t, --topic=TOPIC       topic to publish to\n"
"      --topic-prefix=PREFIX  topic PREFIX.SCHEMA.TABLE from each line's \"table\" member\n"
"  -k, --key=FIELD         key each message by this top-level JSON field\n"
"  -X, --property=KEY=VALUE  librdkafka property (repeatable)\n"
"  -F, --config=FILE       librdkafka properties file (key=value lines)\n"
"      --ack=FILE          keep the count of leading lines made durable in FILE\n"
"      --dlq=FILE          append dead letters to FILE (default: stderr)\n"
STATS_USAGE
"  -v, --verbose           more diagnostics\n"
"  -q, --quiet             errors only\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n";

static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct pub *p = opaque;

	if (kconf_report_error(rk, err, reason))
		p->fatal = p->refused = 1;
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

/*
 * Line seq is refused before it reaches librdkafka: the lines before it are
 * produced first, so that dead letters come out in input order (a line
 * librdkafka refuses as too large is dead-lettered when its batch is).
 */
static void
reject(struct pub *p, uint64_t seq, const char *line, size_t len, const char *why, int cut)
{
	pending_flush(p);
	dead_letter(p, seq, line, len, why, cut);
}

/*
 * The topic of line seq: -t's, or under --topic-prefix the one its "table"
 * member (val) names.  NULL once the line is dead-lettered or has failed.
 */
static rd_kafka_topic_t *
route(struct pub *p, uint64_t seq, const char *line, size_t len, const char *val, size_t vlen)
{
	char table[4 * TOPIC_MAX + 1], name[TOPIC_MAX + 1];
	const char *why = NULL;
	long tlen, nlen = -1;
	rd_kafka_topic_t *rkt;
	rd_kafka_resp_err_t err;
	int e;

	if (p->opt->topic_prefix == NULL)
		return p->one;
	if (val == NULL)
		why = "no table field";
	else if (val[0] != '"')
		why = "table field not a string";
	else if ((tlen = json_key_text(val, vlen, table, sizeof table)) == 0)
		why = "empty table field";
	else if (tlen < 0 || (nlen = topic_of_table(p->opt->topic_prefix, table, (size_t)tlen, name)) < 0)
		why = "topic name too long";
	if (why != NULL) {
		reject(p, seq, line, len, why, 0);
		return NULL;
	}
	if ((rkt = topics_get(p->topics, name, (size_t)nlen)) != NULL)
		return rkt;
	if ((e = errno) == ENOSPC) {
		reject(p, seq, line, len, "too many topics", 0);
	} else {
		err = e == ENOMEM ? RD_KAFKA_RESP_ERR__FAIL : rd_kafka_last_error();
		pending_flush(p);	/* the lines before it are produced, as they were read */
		errno = e;
		log_error("cannot publish line %" PRIu64 " to topic \"%s\":", seq + 1, name);
		line_failed(p, err);
	}
	return NULL;
}

/*
 * The message key of a (valid) key field's value: a string's decoded text, or
 * anything else as compact JSON text, what json_key_text renders.  Keys are
 * mostly objects already compact ({"id":1}): those are used in place, with
 * neither a copy nor json_key_text's stream; the others are compacted into
 * buf.  The length, or -1 when it exceeds cap.
 */
static long
key_text(const char *val, size_t vlen, char *buf, size_t cap, const char **key)
{
	size_t i, j, n = 0;

	*key = buf;
	if (val[0] == '"')
		return json_key_text(val, vlen, buf, cap);
	for (i = 0; i < vlen; i = j) {
		j = i + 1;
		if (val[i] == '"') {
			/* a string, kept whole: it ends at the first quote not escaped */
			while (val[j] != '"')
				j += val[j] == '\\' ? 2 : 1;
			j++;
		} else if ((unsigned char)val[i] <= ' ') {
			continue;	/* whitespace: all a valid text holds below ' ' outside strings */
		}
		if (n + (j - i) <= cap)
			memcpy(buf + n, val + i, j - i);
		n += j - i;
	}
	if (n > cap)
		return -1;
	if (n == vlen)
		*key = val;	/* nothing was left out: the value is its own key */
	return (long)n;
}

/* One input line (sequence seq) to the batch to produce; invalid ones go to the dead letters. */
static void
publish(struct pub *p, const char *line, size_t len, int cut)
{
	uint64_t seq = p->next++;
	char keybuf[MAX_KEY];
	const char *why, *vals[2] = { NULL, NULL }, *val, *key = NULL;
	size_t vlens[2] = { 0, 0 }, vlen;
	long klen = 0;
	rd_kafka_topic_t *rkt;

	if (cut) {
		reject(p, seq, line, len, "line too long", 1);
		return;
	}
	if ((why = json_scan_fields(line, len, p->fields, p->nfields, vals, vlens)) != NULL) {
		reject(p, seq, line, len, why, 0);
		return;
	}
	val = p->table_at < 0 ? NULL : vals[p->table_at];
	vlen = p->table_at < 0 ? 0 : vlens[p->table_at];
	if ((rkt = route(p, seq, line, len, val, vlen)) == NULL)
		return;
	if (p->key_at >= 0) {
		val = vals[p->key_at];
		vlen = vlens[p->key_at];
		if (val == NULL) {
			reject(p, seq, line, len, "no key field", 0);
			return;
		}
		if (vlen == 4 && memcmp(val, "null", 4) == 0) {
			pending_flush(p);	/* it waits for every earlier line */
			publish_everywhere(p, rkt, seq, line, len);
			return;
		}
		if ((klen = key_text(val, vlen, keybuf, sizeof keybuf, &key)) < 0) {
			reject(p, seq, line, len, "key too long", 0);
			return;
		}
	}
	pending_add(p, rkt, line, len, key, (size_t)klen, seq);
}

static void
parse_options(int argc, char **argv, struct options *o, rd_kafka_conf_t *conf)
{
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic", required_argument, NULL, 't' },
		{ "topic-prefix", required_argument, NULL, 'P' },
		{ "key", required_argument, NULL, 'k' },
		{ "property", required_argument, NULL, 'X' },
		{ "config", required_argument, NULL, 'F' },
		{ "ack", required_argument, NULL, 'A' },
		{ "dlq", required_argument, NULL, 'D' },
		STATS_LONGOPTS,
		OPT_GENERAL_LONG
	};
	const char *brokers = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":b:t:k:X:F:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': brokers = optarg; break;
		case 't': o->topic = optarg; break;
		case 'P': o->topic_prefix = optarg; break;
		case 'k': o->key = optarg; break;
		case 'X': kconf_set(conf, "-X", optarg); break;
		case 'F': kconf_file(conf, optarg); break;
		case 'A': o->ack = optarg; break;
		case 'D': o->dlq = optarg; break;
		default:
			if (!stats_option(&o->stats, c, optarg))
				opt_general(c, argv, usage_text);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (o->topic && o->topic_prefix)
		usage_error("-t and --topic-prefix cannot be used together");
	if (o->topic_prefix && !topic_prefix_valid(o->topic_prefix))
		usage_error("invalid topic prefix \"%s\" (1 to %d of A-Z a-z 0-9 . _ -)",
		    o->topic_prefix, TOPIC_MAX - 2);
	if (o->topic_prefix == NULL && (o->topic == NULL || *o->topic == '\0'))
		usage_error("no topic given (use -t TOPIC or --topic-prefix=PREFIX)");
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
	kconf_set(conf, "default", "linger.ms=1");
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
	int n = poll(fds, want_input ? 2 : 1, (int)reporter_wait(&p->rep, ms));

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
		dlq_reopen_if_asked(p->dlq);
		if (pub_tick(p) < 0)
			break;
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
		pending_flush(p);	/* the lines live in lr's buffer until the next lr_fill */
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
		/* refused by the brokers: nothing in the queue can be delivered */
		if (p->refused) {
			rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
			rd_kafka_poll(p->rk, 0);
		}
		rd_kafka_flush(p->rk, 100);
		pub_tick(p);	/* a failure is noted: the lines read are still delivered */
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

/* The topic handles, and the members each line's scan locates: the key and the table. */
static void
setup_topics(struct pub *p)
{
	const struct options *o = p->opt;

	if ((p->topics = topics_new(p->rk)) == NULL)
		die("out of memory");
	if (o->topic && (p->one = topics_get(p->topics, o->topic, strlen(o->topic))) == NULL)
		die("cannot use topic \"%s\":", o->topic);
	p->key_at = p->table_at = -1;
	if (o->key)
		p->fields[p->key_at = p->nfields++] = o->key;
	if (o->topic_prefix) {
		/* a field wanted twice is found once: -k table is the table too */
		if (o->key && strcmp(o->key, "table") == 0)
			p->table_at = p->key_at;
		else
			p->fields[p->table_at = p->nfields++] = "table";
	}
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
	report_conf(&p, conf);

	if ((p.done = calloc(RING, 1)) == NULL)
		die("out of memory");
	if ((p.dlq = dlq_open(opt.dlq)) == NULL)
		exit(EXIT_RUNTIME);	/* what main holds is still reachable */
	if ((p.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err)) == NULL)
		die("%s", err);
	kconf_log_settings(p.rk, (const char *const[]){ "request.required.acks", "enable.idempotence",
	    "max.in.flight.requests.per.connection", "partitioner", "queue.buffering.max.ms",
	    "queue.buffering.max.messages", "queue.buffering.max.kbytes", "batch.num.messages",
	    "batch.size", "compression.codec", NULL });
	setup_topics(&p);
	pending_init(&p);
	p.timeout_ms = message_timeout(p.rk);
	if (pipe2(evpipe, O_NONBLOCK | O_CLOEXEC) < 0)
		die("pipe:");
	mainq = rd_kafka_queue_get_main(p.rk);
	rd_kafka_queue_io_event_enable(mainq, evpipe[1], "1", 1);
	if (report_open(&p) < 0)
		p.fatal = p.report_failed = 1;

	status = run(&p, evpipe[0]);
	if (flush_all(&p) < 0 || rd_kafka_fatal_error(p.rk, NULL, 0))
		status = 1;
	if (p.undelivered > 0) {
		log_error("%" PRIu64 " of %" PRIu64 " lines not delivered (%s)",
		    p.undelivered, p.next, rd_kafka_err2str(p.first_err));
		status = 1;
	}
	log_debug("%" PRIu64 " lines: %" PRIu64 " delivered, %llu dead-lettered, %zu topics",
	    p.next, p.delivered, dlq_count(p.dlq), topics_count(p.topics));
	if (report_close(&p) < 0 || p.report_failed)
		status = 1;
	if (dlq_close(p.dlq) < 0)
		status = 1;
	topics_free(p.topics);
	pending_free(&p);
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
