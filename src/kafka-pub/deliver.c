/*
 * kafka-pub's delivery side: the reports librdkafka sends back, the count of
 * leading lines that are durable, and the lines sent to every partition.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlq.h"
#include "log.h"
#include "pub.h"
#include "sig.h"

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

void
dead_letter(struct pub *p, uint64_t seq, const char *line, size_t len, const char *why, int cut)
{
	dlq_write_input(p->dlq, line, len, why, (unsigned long long)seq + 1, cut);
	mark_done(p, seq);
}

int
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
			/* refused by the brokers: that error said why, the count at exit says how many */
			if (!p->refused)
				log_error("line %" PRIu64 " not delivered: %s", seq + 1, rd_kafka_err2str(err));
		}
		p->fatal = 1;	/* the count can never pass this line: stop reading */
	}
}

/* A line can never be delivered (the reason is logged): stop reading. */
void
line_failed(struct pub *p, rd_kafka_resp_err_t err)
{
	if (p->undelivered++ == 0)
		p->first_err = err;
	p->fatal = 1;
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

void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct pub *p = opaque;
	uintptr_t tag = (uintptr_t)m->_private;

	(void)rk;
	p->queued_bytes -= m->len + m->key_len;
	p->in_flight--;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		report_delivered(p, m);
	if (tag & 1)
		line_reported(p, tag >> 1, m->err, m->payload, m->len);
	else
		copy_reported(p, (struct copies *)tag, m->err, m->payload, m->len);
}

/* Produce one message, waiting while the queue is full; QUEUE_FULL back means a signal came. */
rd_kafka_resp_err_t
produce(struct pub *p, rd_kafka_topic_t *rkt, const char *line, size_t len, const char *key,
    size_t klen, int32_t partition, void *opaque)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		err = rd_kafka_producev(p->rk,
		    RD_KAFKA_V_RKT(rkt),
		    RD_KAFKA_V_PARTITION(partition),
		    RD_KAFKA_V_VALUE((void *)line, len),
		    RD_KAFKA_V_KEY(key, klen),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_OPAQUE(opaque),
		    RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			p->queued_bytes += len + klen;	/* see batch.c */
			p->in_flight++;
		}
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || sig_stop)
			return err;
		pub_wait(p, 100);	/* backpressure: wait for deliveries */
	}
}

/*
 * The topic's partition count, asked each time so that partitions added
 * since count too.  A topic the request auto-creates may take a few tries;
 * the cluster gets message.timeout.ms to answer, as a delivery does.  -1
 * after logging, the error in *errp.
 */
static int
partition_count(struct pub *p, rd_kafka_topic_t *rkt, rd_kafka_resp_err_t *errp)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;
	double start = mono_ms();
	int n;

	for (;;) {
		n = 0;
		if ((err = rd_kafka_metadata(p->rk, 0, rkt, &md, 5000)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (md->topic_cnt == 1 && (err = md->topics[0].err) == RD_KAFKA_RESP_ERR_NO_ERROR)
				n = md->topics[0].partition_cnt;
			rd_kafka_metadata_destroy(md);
		}
		if (n > 0)
			return n;
		if (sig_stop || mono_ms() - start >= p->timeout_ms)
			break;
		pub_wait(p, 200);
	}
	*errp = err ? err : RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
	log_error("cannot learn the partitions of topic \"%s\": %s", rd_kafka_topic_name(rkt),
	    rd_kafka_err2str(*errp));
	return -1;
}

/*
 * A line whose key field is null (a truncate, a schema event) concerns every
 * key of its topic: a copy goes to every partition of that topic, after
 * every earlier line is delivered so that each partition has it behind the
 * lines before it.  The line is durable once every copy is.
 */
void
publish_everywhere(struct pub *p, rd_kafka_topic_t *rkt, uint64_t seq, const char *line, size_t len)
{
	struct copies *c;
	rd_kafka_resp_err_t err;
	int n, i;

	while (p->acked < seq && !p->fatal && !sig_stop)
		pub_wait(p, 100);
	if (p->fatal || sig_stop)
		return;	/* never acknowledged, so sent again after a restart */
	if ((n = partition_count(p, rkt, &err)) < 0) {
		line_failed(p, err);
		return;
	}
	if ((c = calloc(1, sizeof *c)) == NULL)
		die("out of memory");
	c->seq = seq;
	c->left = n + 1;
	for (i = 0; i < n; i++) {
		err = produce(p, rkt, line, len, NULL, 0, i, c);
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

