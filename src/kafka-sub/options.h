/* kafka-sub's command line and the librdkafka defaults it starts from. */
#ifndef KAFKA_SUB_OPTIONS_H
#define KAFKA_SUB_OPTIONS_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "stats.h"

/* Where a partition's first assignment starts (-o); later ones resume from the group's offset. */
enum start {
	START_STORED,		/* the group's offset, else auto.offset.reset */
	START_BEGINNING,
	START_END,
	START_OFFSET,		/* start_at: an absolute offset */
	START_TAIL,		/* start_at messages before the end */
	START_TIME,		/* the first message at or after start_at ms since the epoch */
};

struct options {
	const char **topics;
	int ntopics;
	int npatterns;		/* topics that are regular expressions */
	const char *group;
	int group_given;
	enum start start;
	int64_t start_at;
	int exit_at_end;
	long long count;
	const char *ack;
	const char *dlq;
	int lag;		/* --lag: report the group's lag and exit */
	int origin;		/* --origin: each line says its message's topic, partition and offset */
	long long window;
	long long ack_timeout_ms;
	struct stats_opts stats;	/* --stats, --stats-file, --metrics */
};

/* librdkafka's configuration with kafka-sub's defaults, before -X and -F. */
rd_kafka_conf_t *default_conf(void);

/* Fill o and conf from the command line; a usage error exits 2. */
void parse_options(int argc, char **argv, struct options *o, rd_kafka_conf_t *conf);

#endif
