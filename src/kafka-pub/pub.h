/*
 * kafka-pub's state, shared by its input side (main.c: read, route, produce)
 * and its delivery side (deliver.c: reports, the count of durable lines, the
 * lines sent to every partition).
 */
#ifndef KAFKA_PUB_PUB_H
#define KAFKA_PUB_PUB_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "stats.h"

#define MAX_KEY		(64u << 10)
#define RING		(1u << 20)	/* most lines in flight: the backpressure bound */
#define BATCH		512		/* most lines handed to librdkafka in one call */

/* Lines waiting to be produced together (batch.c), all of one topic. */
struct pending {
	rd_kafka_topic_t *rkt;
	int n;
	uint64_t bytes;			/* of their values and keys */
	rd_kafka_message_t msgs[BATCH];
	size_t keys_used;
	char keys[4 * MAX_KEY];		/* the compacted keys, which are no part of a line */
};

struct options {
	const char *topic;
	const char *topic_prefix;
	const char *key;
	const char *ack;
	const char *dlq;
	struct stats_opts stats;	/* --stats, --stats-file, --metrics */
};

struct pub {
	const struct options *opt;
	rd_kafka_t *rk;
	struct topics *topics;	/* every topic published to, by name */
	rd_kafka_topic_t *one;	/* -t's topic */
	const char *fields[2];	/* the members json_scan_fields locates */
	int nfields;
	int key_at, table_at;	/* their places in fields, -1 when not wanted */
	struct dlq *dlq;
	unsigned char *done;	/* ring: line delivered or dead-lettered */
	uint64_t next;		/* lines read so far */
	uint64_t acked;		/* leading lines durable */
	uint64_t ack_written;
	uint64_t delivered, undelivered;	/* lines */
	uint64_t messages;	/* delivery reports without error: a null-key line's copies each */
	uint64_t in_flight;	/* messages produced, not yet reported */
	double latency_us, latencies;	/* produce to report: the sum and count since the last report */
	rd_kafka_resp_err_t first_err;
	int fatal;
	int refused;		/* a fatal error of the client: nothing more can be delivered */
	long timeout_ms;	/* message.timeout.ms */
	struct pending *pend;
	uint64_t queued_bytes;	/* of the messages not yet reported: librdkafka's count or more */
	uint64_t max_msgs, max_bytes;	/* the limits of librdkafka's queue */
	struct reporter rep;	/* --stats, --metrics, systemd's STATUS= and watchdog */
	int report_failed;	/* a stats line or the metrics file could not be written */
	struct stats_rate rate;	/* report.c: lines acknowledged per second */
	double latency;		/* report.c: the last latency */
	double retries;		/* report.c: the brokers' request retries, as librdkafka last said */
};

/* A message's opaque: its line's number tagged with the low bit (else a line's copies). */
#define LINE_OPAQUE(seq)	((void *)(uintptr_t)((seq) << 1 | 1))

/* Line seq goes to the dead-letter output and so is durable; cut: only its start is kept. */
void dead_letter(struct pub *p, uint64_t seq, const char *line, size_t len, const char *why, int cut);

/* True when err says the message is too large for Kafka: dead-lettered, not failed. */
int too_large(rd_kafka_resp_err_t err);

/* A line can never be delivered (the reason is logged): stop reading. */
void line_failed(struct pub *p, rd_kafka_resp_err_t err);

/* librdkafka's delivery report callback; its opaque is the struct pub. */
void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* Produce one message, waiting while the queue is full; QUEUE_FULL back means a signal came. */
rd_kafka_resp_err_t produce(struct pub *p, rd_kafka_topic_t *rkt, const char *line, size_t len,
    const char *key, size_t klen, int32_t partition, void *opaque);

/* The reports of report.c: set up and READY=1 (-1 after logging); the last one at exit, STOPPING=1. */
int report_open(struct pub *p);
/* Before rd_kafka_new: librdkafka's statistics, for the brokers' retries. */
void report_conf(struct pub *p, rd_kafka_conf_t *conf);
int report_close(struct pub *p);

/* Message m is delivered: the counts, its topic's, and its latency. */
void report_delivered(struct pub *p, const rd_kafka_message_t *m);

/* The reports due now, STATUS= and WATCHDOG=1; -1 (and fatal) when a report cannot be written. */
int pub_tick(struct pub *p);

/* Serve delivery reports for up to ms, and the reports due meanwhile: every wait calls it. */
void pub_wait(struct pub *p, int ms);

/* The batch of pending lines (batch.c): set up once rk is made, and freed. */
void pending_init(struct pub *p);
void pending_free(struct pub *p);

/*
 * Add line seq (to be produced to rkt, keyed by key, which may point into
 * the line or anywhere else) to the batch; it is produced once the batch is
 * full, the topic changes, or pending_flush is called.  The line itself must
 * stay where it is until then.
 */
void pending_add(struct pub *p, rd_kafka_topic_t *rkt, const char *line, size_t len,
    const char *key, size_t klen, uint64_t seq);

/* Produce the pending lines, waiting for room in librdkafka's queue. */
void pending_flush(struct pub *p);

/* Line seq, whose key is null, to every partition of rkt (see deliver.c). */
void publish_everywhere(struct pub *p, rd_kafka_topic_t *rkt, uint64_t seq, const char *line,
    size_t len);

#endif
