/*
 * kafka-sub --lag: the group's lag as the brokers keep it, without joining
 * the group (as kafka-consumer-groups --describe shows it): for each
 * partition of the topics, the offset the group has committed and the
 * partition's end.  It works whether the group's members run or not, which
 * is when cdc-status needs it most.
 */
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "jsonout.h"
#include "log.h"
#include "options.h"
#include "sub.h"

#define LAG_TIMEOUT_MS 10000

/* Is topic one of -t's: named, or matched by a pattern (as librdkafka, not internal topics)? */
static int
wanted(const struct options *o, const regex_t *re, const char *topic)
{
	int i;

	for (i = 0; i < o->ntopics; i++) {
		if (o->topics[i][0] != '^' && strcmp(o->topics[i], topic) == 0)
			return 1;
		if (o->topics[i][0] == '^' && strncmp(topic, "__", 2) != 0 &&
		    regexec(&re[i], topic, 0, NULL, 0) == 0)
			return 1;
	}
	return 0;
}

/* The partitions of the topics -t names or matches; NULL (logged) on an error. */
static rd_kafka_topic_partition_list_t *
partitions(rd_kafka_t *rk, const struct options *o)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_partition_list_t *list = NULL;
	regex_t *re = calloc((size_t)o->ntopics, sizeof *re);
	rd_kafka_resp_err_t err;
	int i, j, found;

	if (re == NULL)
		die("out of memory");
	for (i = 0; i < o->ntopics; i++)
		if (o->topics[i][0] == '^' && regcomp(&re[i], o->topics[i], REG_EXTENDED | REG_NOSUB) != 0)
			usage_error("invalid topic pattern \"%s\"", o->topics[i]);
	if ((err = rd_kafka_metadata(rk, 1, NULL, &md, LAG_TIMEOUT_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		log_error("cannot read the cluster's topics: %s", rd_kafka_err2str(err));
		goto out;
	}
	/* a topic named outright must exist, as when reading */
	for (i = 0; i < o->ntopics; i++) {
		if (o->topics[i][0] == '^')
			continue;
		for (found = 0, j = 0; j < md->topic_cnt && !found; j++)
			found = strcmp(md->topics[j].topic, o->topics[i]) == 0 &&
			    md->topics[j].err == RD_KAFKA_RESP_ERR_NO_ERROR;
		if (!found) {
			log_error("topic \"%s\" does not exist", o->topics[i]);
			rd_kafka_metadata_destroy(md);
			goto out;
		}
	}
	list = rd_kafka_topic_partition_list_new(16);
	for (i = 0; i < md->topic_cnt; i++)
		if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && wanted(o, re, md->topics[i].topic))
			for (j = 0; j < md->topics[i].partition_cnt; j++)
				rd_kafka_topic_partition_list_add(list, md->topics[i].topic,
				    md->topics[i].partitions[j].id);
	rd_kafka_topic_partition_list_sort(list, NULL, NULL);
	rd_kafka_metadata_destroy(md);
out:
	for (i = 0; i < o->ntopics; i++)
		if (o->topics[i][0] == '^')
			regfree(&re[i]);
	free(re);
	return list;
}

int
lag_report(rd_kafka_t *rk, const struct options *o)
{
	rd_kafka_topic_partition_list_t *list = partitions(rk, o);
	rd_kafka_resp_err_t err;
	int64_t lo, hi, from;
	int i, status = 1;

	if (list == NULL)
		return 1;
	if ((err = rd_kafka_committed(rk, list, LAG_TIMEOUT_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		log_error("cannot read the offsets of group \"%s\": %s", o->group, rd_kafka_err2str(err));
		goto out;
	}
	for (i = 0; i < list->cnt; i++) {
		const rd_kafka_topic_partition_t *p = &list->elems[i];

		if ((err = p->err) != RD_KAFKA_RESP_ERR_NO_ERROR ||
		    (err = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi,
		    LAG_TIMEOUT_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			log_error("%s [%d]: %s", p->topic, (int)p->partition, rd_kafka_err2str(err));
			goto out;
		}
		/* a group with no offset starts at the earliest (kafka-sub's auto.offset.reset) */
		from = p->offset >= 0 ? p->offset : lo;
		fputs("{\"topic\":", stdout);
		json_put_string(stdout, p->topic, strlen(p->topic));
		printf(",\"partition\":%d,\"committed\":", (int)p->partition);
		if (p->offset >= 0)
			printf("%" PRId64, p->offset);
		else
			fputs("null", stdout);
		printf(",\"end\":%" PRId64 ",\"lag\":%" PRId64 "}\n", hi, hi > from ? hi - from : 0);
	}
	status = fflush(stdout) == 0 ? 0 : 1;
	if (status)
		log_error("write error:");
out:
	rd_kafka_topic_partition_list_destroy(list);
	return status;
}
