#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "topics.h"

/*
 * What the reports tell of a topic.  Its handle's opaque points to it, so a
 * delivery report finds it without a look-up; it lives apart from the slot,
 * which moves when the table grows.
 */
struct topic_fig {
	char *labels;		/* topic="NAME", its sample's labels in the metrics file */
	uint64_t delivered;	/* messages */
};

struct slot {
	char *name;		/* NULL: empty */
	size_t len;
	uint32_t hash;
	rd_kafka_topic_t *rkt;
	struct topic_fig *fig;
};

/* Open addressing, linear probing, at most half full so a miss ends soon. */
struct topics {
	rd_kafka_t *rk;
	struct slot *slots;
	size_t cap;		/* a power of two */
	size_t n;
};

/* FNV-1a: quick on short names; at most TOPICS_MAX of them, so collisions stay cheap. */
static uint32_t
hash_name(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	while (len-- > 0)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

struct topics *
topics_new(rd_kafka_t *rk)
{
	struct topics *t = calloc(1, sizeof *t);

	if (t == NULL)
		return NULL;
	t->rk = rk;
	t->cap = 16;
	if ((t->slots = calloc(t->cap, sizeof *t->slots)) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static struct slot *
probe(struct slot *slots, size_t cap, const char *name, size_t len, uint32_t h)
{
	size_t i = h & (cap - 1);

	while (slots[i].name != NULL &&
	    !(slots[i].hash == h && slots[i].len == len && memcmp(slots[i].name, name, len) == 0))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

/* Twice the slots; -1 when out of memory. */
static int
grow(struct topics *t)
{
	size_t cap = t->cap * 2, i;
	struct slot *slots = calloc(cap, sizeof *slots);

	if (slots == NULL)
		return -1;
	for (i = 0; i < t->cap; i++)
		if (t->slots[i].name != NULL)
			*probe(slots, cap, t->slots[i].name, t->slots[i].len, t->slots[i].hash) = t->slots[i];
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return 0;
}

/*
 * A handle of topic name, configured as the producer's default topic
 * configuration (acks, partitioner, -X's) says, with fig as its opaque.
 */
static rd_kafka_topic_t *
new_handle(rd_kafka_t *rk, const char *name, struct topic_fig *fig)
{
	rd_kafka_topic_conf_t *conf = rd_kafka_default_topic_conf_dup(rk);

	if (conf == NULL)
		return NULL;
	rd_kafka_topic_conf_set_opaque(conf, fig);
	return rd_kafka_topic_new(rk, name, conf);	/* it owns conf, made or not */
}

/* A new handle in the empty slot s; NULL (errno set) when it cannot be made. */
static rd_kafka_topic_t *
add(struct topics *t, struct slot *s, const char *name, size_t len, uint32_t h)
{
	char *copy = malloc(len + 1);
	struct topic_fig *fig = calloc(1, sizeof *fig);

	if (copy == NULL || fig == NULL) {
		free(copy);
		free(fig);
		return NULL;
	}
	memcpy(copy, name, len);
	copy[len] = '\0';
	if ((s->rkt = new_handle(t->rk, copy, fig)) == NULL) {
		free(copy);
		free(fig);
		return NULL;
	}
	fig->labels = stats_labels("topic", copy, NULL);
	s->fig = fig;
	s->name = copy;
	s->len = len;
	s->hash = h;
	t->n++;
	return s->rkt;
}

rd_kafka_topic_t *
topics_get(struct topics *t, const char *name, size_t len)
{
	uint32_t h = hash_name(name, len);
	struct slot *s = probe(t->slots, t->cap, name, len, h);

	if (s->name != NULL)
		return s->rkt;
	if (t->n >= TOPICS_MAX) {
		errno = ENOSPC;
		return NULL;
	}
	if ((t->n + 1) * 2 > t->cap) {
		if (grow(t) < 0)
			return NULL;
		s = probe(t->slots, t->cap, name, len, h);
	}
	return add(t, s, name, len, h);
}

size_t
topics_count(const struct topics *t)
{
	return t->n;
}

void
topics_delivered(rd_kafka_topic_t *rkt)
{
	struct topic_fig *fig = rd_kafka_topic_opaque(rkt);

	if (fig != NULL)
		fig->delivered++;
}

void
topics_figures(const struct topics *t, struct figures *f)
{
	size_t i;

	for (i = 0; i < t->cap; i++)
		if (t->slots[i].name != NULL)
			fig_sample(f, "topic_messages_delivered", "Messages delivered to a topic.", 1,
			    (double)t->slots[i].fig->delivered, t->slots[i].fig->labels, t->slots[i].name);
}

void
topics_free(struct topics *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->cap; i++) {
		if (t->slots[i].name == NULL)
			continue;
		rd_kafka_topic_destroy(t->slots[i].rkt);
		free(t->slots[i].name);
		free(t->slots[i].fig->labels);
		free(t->slots[i].fig);
	}
	free(t->slots);
	free(t);
}

/* A character Kafka allows in a topic name. */
static int
legal(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '.' || c == '_' || c == '-';
}

int
topic_prefix_valid(const char *prefix)
{
	size_t n = strlen(prefix), i;

	if (n == 0 || n > TOPIC_MAX - 2)	/* room for ".x" */
		return 0;
	for (i = 0; i < n; i++)
		if (!legal((unsigned char)prefix[i]))
			return 0;
	return 1;
}

long
topic_of_table(const char *prefix, const char *table, size_t tlen, char *out)
{
	size_t n = strlen(prefix), i;
	unsigned char c;

	memcpy(out, prefix, n);
	out[n++] = '.';
	for (i = 0; i < tlen; i++) {
		c = (unsigned char)table[i];
		if ((c & 0xc0) == 0x80)
			continue;	/* a UTF-8 continuation byte: its character has its '_' */
		if (n >= TOPIC_MAX)
			return -1;
		out[n++] = legal(c) ? (char)c : '_';
	}
	out[n] = '\0';
	return (long)n;
}
