/*
 * kafka-pub's reports (stats.h): the figures of --stats, SIGUSR1 and
 * --metrics, systemd's STATUS= line, and the waits that keep them on time.
 * The producer also waits inside its backpressure loops (a full queue, a
 * null-key line waiting for the lines before it, a broker down for up to
 * message.timeout.ms): those waits go through pub_wait, so that reports,
 * STATUS= and the watchdog go on there too.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlq.h"
#include "jsonscan.h"
#include "jsonwalk.h"
#include "kconf.h"
#include "notify.h"
#include "pub.h"
#include "topics.h"

/*
 * The mean time from produce to delivery report of the messages delivered
 * since the report before, in seconds; the report before's when none were
 * (NAN until the first).
 */
static double
latency(struct pub *p)
{
	if (p->latencies > 0)
		p->latency = p->latency_us / p->latencies / 1e6;
	p->latency_us = p->latencies = 0;
	return p->latency;
}

/*
 * librdkafka's statistics: the sum of the brokers' txretries, the produce
 * (and other) requests sent again.  Read in place, the rest left alone.
 */
static int
on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	static const char *const brokers[] = { "brokers" }, *const retries[] = { "txretries" };
	struct pub *p = opaque;
	const char *v, *name, *b, *r;
	size_t vl, nl, bl, rl;
	struct jiter it;
	double sum = 0;

	(void)rk;
	if (json_scan_fields(json, len, brokers, 1, &v, &vl) != NULL || v == NULL)
		return 0;
	jw_open(&it, v, vl);
	while (jw_next(&it, &name, &nl, &b, &bl))
		if (json_scan_fields(b, bl, retries, 1, &r, &rl) == NULL && r != NULL)
			sum += strtod(r, NULL);
	p->retries = sum;
	return 0;	/* librdkafka frees json */
}

void
report_conf(struct pub *p, rd_kafka_conf_t *conf)
{
	char buf[64];
	size_t len = sizeof buf;
	long ms = p->opt->stats.seconds > 0 && p->opt->stats.seconds < 5 ? p->opt->stats.seconds * 1000L : 5000;

	p->retries = NAN;
	rd_kafka_conf_set_stats_cb(conf, on_stats);
	/* as often as the reports, at least every 5 s, unless -X or -F says */
	if (rd_kafka_conf_get(conf, "statistics.interval.ms", buf, &len) == RD_KAFKA_CONF_OK &&
	    strcmp(buf, "0") == 0) {
		snprintf(buf, sizeof buf, "statistics.interval.ms=%ld", ms);
		kconf_set(conf, "default", buf);
	}
}

/* What the ack file holds, or would hold: the leading lines durable. */
static uint64_t
acknowledged(const struct pub *p)
{
	return p->opt->ack ? p->ack_written : p->acked;
}

/* The figures of a report: the counts, then each topic's deliveries. */
static void
figures(void *arg, struct figures *f)
{
	struct pub *p = arg;

	fig_add(f, "lines_in", HELP_LINES_IN, 1, (double)p->next);
	fig_add(f, "messages_delivered", "Messages Kafka acknowledged (a null-key line's copies each).", 1,
	    (double)p->messages);
	fig_add(f, "lines_acknowledged", HELP_LINES_ACKNOWLEDGED, 1,
	    (double)acknowledged(p));
	fig_add(f, "dead_lettered", HELP_DEAD_LETTERED, 1, (double)dlq_count(p->dlq));
	fig_add(f, "delivery_failures", "Lines Kafka could not be given (retries exhausted, fatal errors).", 1,
	    (double)p->undelivered);
	fig_add(f, "retries", HELP_RETRIES, 1, p->retries);
	fig_add(f, "in_flight", "Messages produced, not yet reported delivered or failed.", 0, (double)p->in_flight);
	fig_add(f, "lines_per_second", HELP_LINES_PER_SECOND, 0,
	    stats_rate(&p->rate, (double)p->acked));
	fig_add(f, "delivery_latency_seconds", "Produce to delivery report, mean since the report before.", 0,
	    latency(p));
	topics_figures(p->topics, f);
}

/* systemd's STATUS= line. */
static void
status_line(void *arg, char *buf, size_t size)
{
	struct pub *p = arg;

	snprintf(buf, size, "%" PRIu64 " lines read, %" PRIu64 " messages delivered, %llu dead-lettered, %"
	    PRIu64 " in flight", p->next, p->messages, dlq_count(p->dlq), p->in_flight);
}

int
report_open(struct pub *p)
{
	p->latency = NAN;
	stats_rate_start(&p->rate, 0);
	if (reporter_open(&p->rep, "kafka-pub", &p->opt->stats, &(struct report_ops){ figures, status_line }, p) < 0)
		return -1;
	notify("READY=1\nSTATUS=waiting for input");
	return 0;
}

void
report_delivered(struct pub *p, const rd_kafka_message_t *m)
{
	int64_t us = rd_kafka_message_latency(m);

	p->messages++;
	topics_delivered(m->rkt);
	if (us >= 0) {
		p->latency_us += (double)us;
		p->latencies++;
	}
}

int
pub_tick(struct pub *p)
{
	if (p->report_failed)
		return -1;
	if (reporter_tick(&p->rep) < 0) {
		p->report_failed = p->fatal = 1;
		return -1;
	}
	return 0;
}

void
pub_wait(struct pub *p, int ms)
{
	pub_tick(p);
	rd_kafka_poll(p->rk, (int)reporter_wait(&p->rep, ms));
}

int
report_close(struct pub *p)
{
	int status = 0;

	if (reporter_final(&p->rep) < 0)
		status = -1;
	reporter_close(&p->rep);
	notify("STOPPING=1");
	return status;
}
