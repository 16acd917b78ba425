/*
 * kafka-sub's fetching: pausing and resuming partitions for --window, and
 * waking librdkafka's fetchers where librdkafka 2.0 would wait a second.
 */
#include <stdio.h>
#include <stdlib.h>

#include <librdkafka/rdkafka.h>

#include "ackwin.h"
#include "clock.h"
#include "log.h"
#include "sub.h"

/*
 * librdkafka 2.0's broker thread looks for partitions to fetch only when it
 * wakes up: for a request to send, a response, or after a second.  A
 * partition that becomes fetchable meanwhile (resumed, or below the prefetch
 * limits again) waits for the rest of that second.  A ListOffsets request
 * for the owned partitions not at their end (its answer unused) wakes every
 * leader's thread, which fetches at once.  The request is sent at once; its
 * answer may wait behind a fetch that waits for data (fetch.wait.max.ms):
 * not for it.
 */
void
wake_fetchers(struct sub *s, const char *why)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(s->nparts);
	int i;

	for (i = 0; i < s->nparts; i++)
		if (s->parts[i].owned && !s->parts[i].eof)
			rd_kafka_topic_partition_list_add(list, s->parts[i].topic,
			    s->parts[i].partition)->offset = -1;	/* the latest offset */
	if (list->cnt > 0) {
		double t0 = mono_ms();

		rd_kafka_offsets_for_times(s->rk, list, 1);
		log_debug("%s: fetchers of %d partitions woken in %.1f ms", why, list->cnt, mono_ms() - t0);
	}
	rd_kafka_topic_partition_list_destroy(list);
}

/*
 * librdkafka 2.0 stops fetching a partition while the local queue holds
 * queued.min.messages or queued.max.messages.kbytes.  A reader that empties
 * the queue sooner (a small queue, kept so for memory, or a downstream
 * slower than the broker) would wait for the fetcher's next wake-up with
 * nothing to do: once the queue came near a limit and has fallen well below
 * it, the fetchers are woken.
 */
void
refill(struct sub *s, size_t before)
{
	size_t qlen = rd_kafka_queue_length(s->queue);
	double avg = s->msgs_read ? (double)s->bytes_read / s->msgs_read : 0;
	char why[64];

	/* the queue as it was before this batch, as the fetcher last saw it */
	if ((long long)before * 4 >= s->min_msgs * 3 || before * avg * 4 >= s->max_bytes * 3.0)
		s->near_full = 1;
	if (!s->near_full || s->paused || (long long)qlen * 4 >= s->min_msgs ||
	    qlen * avg * 4 >= s->max_bytes)
		return;
	s->near_full = 0;
	snprintf(why, sizeof why, "%zu messages queued", qlen);
	wake_fetchers(s, why);
}

/* librdkafka's prefetch limits, as refill() compares them. */
void
prefetch_limits(struct sub *s)
{
	char buf[32];
	size_t len = sizeof buf;

	s->min_msgs = s->max_bytes = 1LL << 40;	/* no limit known: never near it */
	if (rd_kafka_conf_get(rd_kafka_conf(s->rk), "queued.min.messages", buf, &len) == RD_KAFKA_CONF_OK)
		s->min_msgs = strtoll(buf, NULL, 10);
	len = sizeof buf;
	if (rd_kafka_conf_get(rd_kafka_conf(s->rk), "queued.max.messages.kbytes", buf, &len) ==
	    RD_KAFKA_CONF_OK)
		s->max_bytes = strtoll(buf, NULL, 10) * 1024;
}

/*
 * Pause or resume the partitions of list, noting which are paused.  Only
 * those are resumed: librdkafka fetches a resumed partition half a second
 * later, paused or not.
 */
void
pause_list(struct sub *s, rd_kafka_topic_partition_list_t *list, int pause)
{
	rd_kafka_topic_partition_list_t *changed = rd_kafka_topic_partition_list_new(list->cnt);
	int i, k;

	for (i = 0; i < list->cnt; i++) {
		k = find_part(s, list->elems[i].topic, list->elems[i].partition);
		if (s->parts[k].paused == pause)
			continue;
		s->parts[k].paused = pause;
		rd_kafka_topic_partition_list_add(changed, list->elems[i].topic, list->elems[i].partition);
	}
	if (changed->cnt > 0 && pause)
		rd_kafka_pause_partitions(s->rk, changed);
	else if (changed->cnt > 0)
		rd_kafka_resume_partitions(s->rk, changed);
	rd_kafka_topic_partition_list_destroy(changed);
}

/*
 * Pause consuming while the window is full; resume once half of it is
 * acknowledged.  Each resume costs a fetch round trip before lines flow
 * again: a downstream acknowledging line by line would otherwise have the
 * partitions paused and resumed for every line.
 */
void
throttle(struct sub *s)
{
	rd_kafka_topic_partition_list_t *list;
	size_t len = ackwin_len(s->win), window = (size_t)s->opt->window;
	int full = s->opt->ack && (s->paused ? len > window / 2 : len >= window);

	if (full == s->paused)
		return;
	if (rd_kafka_assignment(s->rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		pause_list(s, list, full);
		rd_kafka_topic_partition_list_destroy(list);
	}
	s->paused = full;
	/* a window of a few hundred lines would otherwise move once a second */
	if (!full)
		wake_fetchers(s, "window open");
}
