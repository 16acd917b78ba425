/*
 * kafka-pub's topics: the one topic of -t, or with --topic-prefix one topic
 * per table, PREFIX.SCHEMA.TABLE.  Handles are kept by name, so a line costs
 * a hash look-up, not an allocation; a topic's handle is made on its first
 * line and kept until exit.
 */
#ifndef KAFKA_PUB_TOPICS_H
#define KAFKA_PUB_TOPICS_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#define TOPIC_MAX	249	/* the longest topic name Kafka accepts */
#define TOPICS_MAX	10000	/* most topics one run publishes to */

struct topics;

/* An empty set of topic handles of rk; NULL when out of memory. */
struct topics *topics_new(rd_kafka_t *rk);

/*
 * The handle of topic name[0..len), made on first use.  NULL when TOPICS_MAX
 * topics are known already (errno ENOSPC) or librdkafka refuses the name.
 */
rd_kafka_topic_t *topics_get(struct topics *t, const char *name, size_t len);

/* Topics known so far. */
size_t topics_count(const struct topics *t);

/* One message delivered to rkt, a handle topics_get made: its topic's count in the reports. */
void topics_delivered(rd_kafka_topic_t *rkt);

struct figures;
/* Each topic's sample of topic_messages_delivered, labelled topic="NAME" (stats.h). */
void topics_figures(const struct topics *t, struct figures *f);

/* Destroy every handle and the set. */
void topics_free(struct topics *t);

/* True when prefix is a usable --topic-prefix: 1..TOPIC_MAX-2 legal characters. */
int topic_prefix_valid(const char *prefix);

/*
 * The topic of a table: prefix, '.', then the table name (its decoded UTF-8
 * text) with every character outside [A-Za-z0-9._-] replaced by '_', into
 * out (at least TOPIC_MAX + 1 bytes).  Returns the length, or -1 when the
 * name would be longer than TOPIC_MAX.
 */
long topic_of_table(const char *prefix, const char *table, size_t tlen, char *out);

#endif
