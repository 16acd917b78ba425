/*
 * kafka-pub's lines handed to librdkafka a batch at a time.  One call of
 * rd_kafka_produce_batch enqueues up to BATCH lines of one topic: one clock
 * reading and one topic lock for them all instead of one each per line
 * (rd_kafka_producev), which is a tenth of what the input side costs.
 *
 * A batch is produced only once librdkafka's queue has room for all of it
 * (its count and bytes limits), so no line of it is refused as QUEUE_FULL
 * while a later one is taken: the lines of a key stay in their order.  The
 * lines a batch points to live in the line reader's buffer, so a batch is
 * produced before the reader reads again (pending_flush).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pub.h"
#include "sig.h"

/* A limit of the producer's queue, from its configuration; fallback when unknown. */
static uint64_t
queue_limit(rd_kafka_t *rk, const char *name, uint64_t unit, uint64_t fallback)
{
	char buf[32];
	size_t size = sizeof buf;
	unsigned long long v;

	if (rd_kafka_conf_get(rd_kafka_conf(rk), name, buf, &size) != RD_KAFKA_CONF_OK)
		return fallback;
	v = strtoull(buf, NULL, 10);
	return v > 0 ? v * unit : fallback;
}

void
pending_init(struct pub *p)
{
	p->max_msgs = queue_limit(p->rk, "queue.buffering.max.messages", 1, 100000);
	p->max_bytes = queue_limit(p->rk, "queue.buffering.max.kbytes", 1024, (uint64_t)1 << 30);
	if ((p->pend = calloc(1, sizeof *p->pend)) == NULL)
		die("out of memory");
}

void
pending_free(struct pub *p)
{
	free(p->pend);
}

/* Room in the queue for n more messages of bytes bytes?  Both counts only fall meanwhile. */
static int
room(struct pub *p, int n, uint64_t bytes)
{
	return (uint64_t)rd_kafka_outq_len(p->rk) + (uint64_t)n <= p->max_msgs &&
	    p->queued_bytes + bytes <= p->max_bytes;
}

/* What produce_batch said of line seq: delivered later, dead-lettered, or failed. */
static void
batch_result(struct pub *p, const rd_kafka_message_t *m)
{
	uint64_t seq = (uintptr_t)m->_private >> 1;

	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		p->queued_bytes += m->len + m->key_len;
		p->in_flight++;
	} else if (too_large(m->err)) {
		dead_letter(p, seq, m->payload, m->len, rd_kafka_err2str(m->err), 0);
	} else if (m->err != RD_KAFKA_RESP_ERR__QUEUE_FULL || !sig_stop) {
		log_error("cannot produce line %" PRIu64 ": %s", seq + 1, rd_kafka_err2str(m->err));
		line_failed(p, m->err);
	}
	/* QUEUE_FULL after a signal: never acknowledged, so sent again after a restart */
}

/* One by one, as produce() waits for room each time: a batch larger than the queue. */
static void
produce_each(struct pub *p, struct pending *b)
{
	rd_kafka_message_t *m;
	int i;

	for (i = 0; i < b->n; i++) {
		m = &b->msgs[i];
		m->err = produce(p, b->rkt, m->payload, m->len, m->key, m->key_len,
		    RD_KAFKA_PARTITION_UA, m->_private);
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
			continue;	/* produce() counted its bytes */
		batch_result(p, m);
	}
}

void
pending_flush(struct pub *p)
{
	struct pending *b = p->pend;
	int i;

	if (b->n == 0)
		return;
	if (b->bytes > p->max_bytes || (uint64_t)b->n > p->max_msgs) {
		produce_each(p, b);
	} else {
		while (!room(p, b->n, b->bytes) && !sig_stop)
			pub_wait(p, 100);	/* backpressure: wait for deliveries */
		if (sig_stop)
			for (i = 0; i < b->n; i++)
				b->msgs[i].err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
		else
			rd_kafka_produce_batch(b->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
			    b->msgs, b->n);
		for (i = 0; i < b->n; i++)
			batch_result(p, &b->msgs[i]);
	}
	b->n = 0;
	b->bytes = 0;
	b->keys_used = 0;
}

/* True when key[0..klen) lies within line[0..len): used in place, as the line is. */
static int
within(const char *key, size_t klen, const char *line, size_t len)
{
	uintptr_t k = (uintptr_t)key, l = (uintptr_t)line;

	return k >= l && k + klen <= l + len;
}

void
pending_add(struct pub *p, rd_kafka_topic_t *rkt, const char *line, size_t len,
    const char *key, size_t klen, uint64_t seq)
{
	struct pending *b = p->pend;
	rd_kafka_message_t *m;

	if (b->n == BATCH || (b->n > 0 && b->rkt != rkt) || sizeof b->keys - b->keys_used < klen)
		pending_flush(p);
	if (key != NULL && !within(key, klen, line, len)) {
		/* a compacted key lives until the batch is produced */
		memcpy(b->keys + b->keys_used, key, klen);
		key = b->keys + b->keys_used;
		b->keys_used += klen;
	}
	b->rkt = rkt;
	m = &b->msgs[b->n++];
	memset(m, 0, sizeof *m);
	m->payload = (void *)line;
	m->len = len;
	m->key = (void *)key;
	m->key_len = klen;
	m->_private = LINE_OPAQUE(seq);
	b->bytes += len + klen;
}
