#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kconf.h"
#include "log.h"

static void
set(rd_kafka_conf_t *conf, const char *where, const char *key, const char *val)
{
	char err[512];

	if (rd_kafka_conf_set(conf, key, val, err, sizeof err) != RD_KAFKA_CONF_OK)
		usage_error("%s: %s", where, err);
}

void
kconf_set(rd_kafka_conf_t *conf, const char *opt, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char key[256], where[300];

	snprintf(where, sizeof where, "%s %s", opt, kv);
	if (eq == NULL || eq == kv || (size_t)(eq - kv) >= sizeof key)
		usage_error("%s: expected KEY=VALUE", where);
	memcpy(key, kv, eq - kv);
	key[eq - kv] = '\0';
	set(conf, where, key, eq + 1);
}

void
kconf_file(rd_kafka_conf_t *conf, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, *p, *end, where[4200];
	size_t cap = 0;
	long no = 0;

	if (f == NULL)
		usage_error("cannot open config file \"%s\": %s", path, strerror(errno));
	while (getline(&line, &cap, f) != -1) {
		no++;
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		end = p + strlen(p);
		while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
			*--end = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		snprintf(where, sizeof where, "%.4000s:%ld", path, no);
		kconf_set(conf, where, p);
	}
	free(line);
	fclose(f);
}

void
kconf_brokers(rd_kafka_conf_t *conf, const char *brokers)
{
	char cur[1024];
	size_t len = sizeof cur;
	const char *env = getenv("KAFKA_BROKERS");

	if (brokers == NULL) {
		if (rd_kafka_conf_get(conf, "bootstrap.servers", cur, &len) == RD_KAFKA_CONF_OK &&
		    cur[0] != '\0')
			return;
		brokers = env && *env ? env : "localhost:9092";
	}
	set(conf, "-b", "bootstrap.servers", brokers);
}

void
kconf_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	/* librdkafka logs every transient connection failure; the tools report
	 * what matters through error callbacks and their own messages */
	if (level <= 2)
		log_error("kafka: %s: %s", fac, buf);
	else
		log_debug("kafka: %s: %s", fac, buf);
}

int
kconf_report_error(rd_kafka_t *rk, int err, const char *reason)
{
	char buf[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, buf, sizeof buf);
		log_error("fatal: %s", buf);
		return 1;
	}
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		log_warning("%s", reason);
	else
		log_debug("%s: %s", rd_kafka_err2str(err), reason);
	return 0;
}
