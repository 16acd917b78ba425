/* What kafka-sub's files share: the consumer's state. */
#ifndef KAFKA_SUB_SUB_H
#define KAFKA_SUB_SUB_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ackwin.h"
#include "dlq.h"
#include "options.h"
#include "stats.h"

/* A partition this process has been assigned at some time. */
struct part {
	char *topic;
	int32_t partition;
	int64_t next;		/* first offset not yet durable downstream */
	int64_t committed;	/* what the group holds (as far as we know) */
	int64_t read;		/* after the last message handled; -1: none yet */
	int owned;		/* assigned now */
	unsigned gen;		/* its assignments so far: marks of an earlier one are stale */
	int eof;		/* at its end (for -e) */
	int paused;		/* paused by us: librdkafka keeps it so across assignments */
	char *labels, *name;	/* its stats labels, and its key in a stats line: "topic/partition" */
	char *origin;		/* --origin's member up to the offset: "kafka":{"topic":...,"offset": */
};

/* A mark in the ack window: "once its line is durable, partition part is durable up to offset". */
struct mark {
	int part;
	unsigned gen;
	int64_t offset;
};

struct sub {
	const struct options *opt;
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;	/* the consumer queue, read in batches */
	struct dlq *dlq;
	struct part *parts;
	int nparts;
	struct ackwin *win;	/* marks of messages handled but not yet durable */
	uint64_t lines;		/* lines written */
	long long consumed;
	int ackfd;
	int paused;
	int fatal;
	int out_closed;		/* stdout closed: the final revoke writes nothing */
	int out_failed;		/* stdout cannot be written: stop */
	double last_commit;
	int last_part;		/* find_part's last answer: messages come in runs of one partition */
	/* refill(): librdkafka's prefetch limits, what was read, the queue near a limit */
	long long min_msgs, max_bytes;
	uint64_t msgs_read, bytes_read;
	int near_full;
	rd_kafka_topic_t **known;	/* handles of the named topics (see subscribe) */
	struct reporter rep;	/* --stats, --metrics, systemd's STATUS= */
	struct stats_rate rate;	/* of lines, for the reports */
	unsigned long long commits;
};

/* main.c */
int find_part(struct sub *s, const char *topic, int32_t partition);
void read_acks(struct sub *s);
int commit(struct sub *s, int sync);
void flush_out(struct sub *s);
void wait_acks(struct sub *s, long long ms);

/* fetch.c: pausing for --window, and waking librdkafka's fetchers */
void wake_fetchers(struct sub *s, const char *why);
void refill(struct sub *s, size_t before);
void prefetch_limits(struct sub *s);
void pause_list(struct sub *s, rd_kafka_topic_partition_list_t *list, int pause);
void throttle(struct sub *s);

/* lag.c: --lag, the group's committed offsets and the partitions' ends; the exit status */
int lag_report(rd_kafka_t *rk, const struct options *o);

/* rebalance.c: librdkafka's rebalance callback (-o applies to a partition's first assignment) */
void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *list, void *opaque);

#endif
