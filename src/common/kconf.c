#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kconf.h"
#include "log.h"

/* Does s read as an integer (librdkafka may show it normalised, 0x10 as 16)? */
static int
is_integer(const char *s)
{
	char *end;

	errno = 0;
	(void)strtoll(s, &end, 0);
	return end != s && errno == 0 && end[strspn(end, " \t")] == '\0';
}

/*
 * Might err show val or part of it?  librdkafka quotes a refused value
 * ("Invalid value \"...\" for configuration property"), only the bad item
 * of a list ("debug=broker,xyz"), or a number normalised ("0x10" as 16).
 */
static int
shows(const char *err, const char *val)
{
	char *copy, *tok, *save;
	int found = strcasestr(err, val) != NULL || is_integer(val);

	copy = xstrdup(val);
	for (tok = strtok_r(copy, ",; \t", &save); tok && !found; tok = strtok_r(NULL, ",; \t", &save))
		found = strlen(tok) >= 4 && strcasestr(err, tok) != NULL;
	free(copy);
	return found;
}

/*
 * Why librdkafka refused val for key, never showing val: a value can be a
 * secret (sasl.password).  A range is kept: it comes from the property.
 */
static void
refused(const char *at, const char *key, const char *val, char *err)
{
	const char *range = strstr(err, "outside allowed range ");

	err[strcspn(err, "\n")] = '\0';
	if (*val == '\0' || !shows(err, val))
		usage_error("%s%s: %s", at, key, err);
	if (range)
		usage_error("%s%s: invalid value (%s)", at, key, range);
	usage_error("%s%s: invalid value", at, key);
}

/* at prefixes the key in messages: "-X " or "FILE:LINE: ". */
static void
set(rd_kafka_conf_t *conf, const char *at, const char *key, const char *val)
{
	char err[512];

	switch (rd_kafka_conf_set(conf, key, val, err, sizeof err)) {
	case RD_KAFKA_CONF_OK:
		return;
	case RD_KAFKA_CONF_UNKNOWN:
		usage_error("%s%s: no such configuration property", at, key);
	default:
		refused(at, key, val, err);
	}
}

/* A "key=value" property; where is "-X" or "FILE:LINE". */
static void
set_kv(rd_kafka_conf_t *conf, const char *where, const char *sep, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char key[256], at[4200];

	/* without a '=' the whole argument may be a mistyped secret: not shown */
	if (eq == NULL || eq == kv || (size_t)(eq - kv) >= sizeof key)
		usage_error("%s: expected KEY=VALUE", where);
	memcpy(key, kv, eq - kv);
	key[eq - kv] = '\0';
	snprintf(at, sizeof at, "%s%s", where, sep);
	set(conf, at, key, eq + 1);
}

void
kconf_set(rd_kafka_conf_t *conf, const char *opt, const char *kv)
{
	set_kv(conf, opt, " ", kv);
}

void
kconf_file(rd_kafka_conf_t *conf, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, *p, *end, where[4100];
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
		set_kv(conf, where, ": ", p);
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
	set(conf, "-b ", "bootstrap.servers", brokers);
}

void
kconf_log_settings(rd_kafka_t *rk, const char *const *names)
{
	const rd_kafka_conf_t *conf = rd_kafka_conf(rk);
	char line[2048], val[256];
	size_t len, used = 0;

	if (log_level < LOG_DEBUG)
		return;
	line[0] = '\0';
	for (; *names != NULL; names++) {
		len = sizeof val;
		if (rd_kafka_conf_get(conf, *names, val, &len) != RD_KAFKA_CONF_OK)
			continue;
		used += snprintf(line + used, sizeof line - used, " %s=%s", *names, val);
		if (used >= sizeof line)
			break;
	}
	log_debug("librdkafka:%s", line);
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
	static int refused;	/* a broker refused the client: it exits */
	char buf[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, buf, sizeof buf);
		log_error("fatal: %s", buf);
		return 1;
	}
	/* a wrong password or an untrusted certificate: the same on every retry */
	if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL) {
		if (!refused++)
			log_error("%s", reason);
		return 1;
	}
	/* after a refusal the brokers are down for that reason, said already */
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !refused)
		log_warning("%s", reason);
	else
		log_debug("%s: %s", rd_kafka_err2str(err), reason);
	return 0;
}
