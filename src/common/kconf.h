/* librdkafka configuration from -b, -X KEY=VALUE and -F FILE, shared by the Kafka tools. */
#ifndef PGCDC_KCONF_H
#define PGCDC_KCONF_H

#include <librdkafka/rdkafka.h>

/*
 * Set one "key=value" property; a bad one is a usage error (exit 2) naming
 * opt and the key, never the value (it may be a password).
 */
void kconf_set(rd_kafka_conf_t *conf, const char *opt, const char *kv);

/*
 * Set every "key=value" line of a file (blank lines and # comments skipped);
 * errors name the file, the line number and the key, never the value.
 */
void kconf_file(rd_kafka_conf_t *conf, const char *path);

/*
 * bootstrap.servers: brokers (-b) when given, else what -X/-F set, else
 * $KAFKA_BROKERS, else localhost:9092.
 */
void kconf_brokers(rd_kafka_conf_t *conf, const char *brokers);

/*
 * Report an error librdkafka's error callback got; returns 1 when it is fatal
 * (the client can do nothing more): librdkafka's fatal errors, and a broker
 * that refuses the client's credentials or whose certificate does not verify,
 * which trying again cannot mend.  All brokers down is a warning, the rest
 * are retried by librdkafka and shown only with -v.
 */
int kconf_report_error(rd_kafka_t *rk, int err, const char *reason);

/*
 * With -v: the values rk runs with of the given properties (after
 * librdkafka's own adjustments, such as idempotence's max.in.flight), on one
 * line.  Only for properties that cannot hold a secret.
 */
void kconf_log_settings(rd_kafka_t *rk, const char *const *names);

/* librdkafka's log lines through our logging (kept out of stdout). */
void kconf_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
