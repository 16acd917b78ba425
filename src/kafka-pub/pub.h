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

#define MAX_KEY		(64u << 10)
#define RING		(1u << 20)	/* most lines in flight: the backpressure bound */

struct options {
	const char *topic;
	const char *topic_prefix;
	const char *key;
	const char *ack;
	const char *dlq;
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
	uint64_t delivered, undelivered;
	rd_kafka_resp_err_t first_err;
	int fatal;
	long timeout_ms;	/* message.timeout.ms */
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

/* Line seq, whose key is null, to every partition of rkt (see deliver.c). */
void publish_everywhere(struct pub *p, rd_kafka_topic_t *rkt, uint64_t seq, const char *line,
    size_t len);

#endif
