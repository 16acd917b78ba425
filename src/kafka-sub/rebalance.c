/*
 * kafka-sub's side of a rebalance: the partitions taken start where -o says
 * (their first assignment) or at the group's offset; those given up commit
 * first what downstream acknowledged.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "log.h"
#include "sub.h"

/* The first offset of a partition new to this process, as -o asks. */
static int64_t
start_offset(const struct options *o)
{
	switch (o->start) {
	case START_BEGINNING: return RD_KAFKA_OFFSET_BEGINNING;
	case START_END: return RD_KAFKA_OFFSET_END;
	case START_OFFSET: return o->start_at;
	case START_TAIL: return RD_KAFKA_OFFSET_TAIL(o->start_at);
	case START_TIME: return o->start_at;	/* looked up by start_times() */
	default: return RD_KAFKA_OFFSET_STORED;
	}
}

/*
 * -o s@MS: the offsets of the first messages at or after MS of the
 * partitions in list that start there (times: their indexes); a partition
 * with none starts at its end, where the next message will be.  -1 when the
 * brokers cannot say.
 */
static int
start_times(struct sub *s, rd_kafka_topic_partition_list_t *list, const int *times, int n)
{
	rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(n);
	rd_kafka_resp_err_t err;
	int i;

	for (i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(q, list->elems[times[i]].topic,
		    list->elems[times[i]].partition)->offset = s->opt->start_at;
	err = rd_kafka_offsets_for_times(s->rk, q, 30000);
	for (i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < n; i++) {
		if ((err = q->elems[i].err) != RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		list->elems[times[i]].offset = q->elems[i].offset >= 0 ? q->elems[i].offset : RD_KAFKA_OFFSET_END;
		log_debug("%s [%d] starts at offset %" PRId64 " (-o s@%" PRId64 ")", q->elems[i].topic,
		    (int)q->elems[i].partition, q->elems[i].offset, s->opt->start_at);
	}
	rd_kafka_topic_partition_list_destroy(q);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		log_error("cannot find the offsets of -o s@%" PRId64 ": %s", s->opt->start_at, rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

/* librdkafka's answer to an assignment: an error object from the incremental calls. */
static void
assigned(struct sub *s, rd_kafka_error_t *error, const char *what)
{
	if (error == NULL)
		return;
	log_error("cannot %s partitions: %s", what, rd_kafka_error_string(error));
	rd_kafka_error_destroy(error);
	s->fatal = 1;
}

/* Take the partitions of list, each from where it starts. */
static void
assign(struct sub *s, rd_kafka_topic_partition_list_t *list, int cooperative)
{
	int i, k, known, ntimes = 0, *times;

	if ((times = calloc(list->cnt + 1, sizeof *times)) == NULL)
		die("out of memory");
	for (i = 0; i < list->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &list->elems[i];

		for (k = known = 0; k < s->nparts; k++)
			known |= s->parts[k].partition == tp->partition &&
			    strcmp(s->parts[k].topic, tp->topic) == 0;
		k = find_part(s, tp->topic, tp->partition);
		s->parts[k].owned = 1;
		s->parts[k].eof = 0;
		s->parts[k].gen++;
		s->parts[k].next = s->parts[k].committed = s->parts[k].read = -1;
		/* -o applies to a partition's first assignment; later ones resume */
		tp->offset = known ? RD_KAFKA_OFFSET_STORED : start_offset(s->opt);
		if (!known && s->opt->start == START_TIME)
			times[ntimes++] = i;
		log_debug("assigned %s [%d]", tp->topic, (int)tp->partition);
	}
	if (ntimes > 0 && start_times(s, list, times, ntimes) < 0)
		s->fatal = 1;
	free(times);
	if (cooperative)
		assigned(s, rd_kafka_incremental_assign(s->rk, list), "take");
	else
		rd_kafka_assign(s->rk, list);
	/*
	 * librdkafka keeps a partition paused across assignments: one paused
	 * while the window was full, revoked and assigned again, would never be
	 * resumed.  Each partition taken is paused or resumed as the others are
	 * (resumed only when it was paused: a resume costs half a second).
	 */
	pause_list(s, list, s->paused);
}

/*
 * A rebalance, eager (every partition revoked, then a new assignment) or
 * cooperative (only the partitions that move are revoked, and assigned to
 * their next owner, the others are read on meanwhile).
 */
void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *list, void *opaque)
{
	struct sub *s = opaque;
	int i, cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		assign(s, list, cooperative);
		return;
	}
	/* revoked: make what was written durable if downstream can in time, commit it */
	flush_out(s);
	if (s->opt->ack && !s->out_closed && !s->out_failed) {	/* at exit, finish() has waited already */
		wait_acks(s, s->opt->ack_timeout_ms < 5000 ? s->opt->ack_timeout_ms : 5000);
		if (ackwin_acked(s->win) < s->lines)
			log_warning("partitions revoked while %" PRIu64 " lines were not yet acknowledged downstream:"
			    " those of the revoked partitions are read again by their next owner",
			    s->lines - ackwin_acked(s->win));
	}
	read_acks(s);
	commit(s, 1);
	/* marks of revoked partitions no longer matter: the next owner re-reads from the commit */
	for (i = 0; i < list->cnt; i++)
		s->parts[find_part(s, list->elems[i].topic, list->elems[i].partition)].owned = 0;
	if (cooperative)
		assigned(s, rd_kafka_incremental_unassign(rk, list), "give up");
	else
		rd_kafka_assign(rk, NULL);
}
