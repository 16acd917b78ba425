/*
 * kafka-mock: serve an in-memory Kafka cluster (librdkafka's mock cluster)
 * for demos and fault tests.  It prints the cluster's bootstrap address as
 * one line on standard output, then serves until SIGINT or SIGTERM.
 * Everything the cluster holds is lost when it exits.
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "kconf.h"
#include "log.h"
#include "opt.h"
#include "sig.h"

#define MAX_BROKERS	16
#define MAX_PARTITIONS	10000
#define MAX_TOPIC_NAME	249	/* Kafka's own limit */

static const char usage_text[] =
"Usage: kafka-mock [--brokers=N] [--topic=NAME[:PARTITIONS]]... [-X KEY=VALUE]... [-hqVv]\n"
"Serve an in-memory Kafka cluster for demos and fault tests; print its bootstrap\n"
"address on standard output, then serve until SIGINT or SIGTERM.\n"
"\n"
"Options:\n"
"      --brokers=N         number of brokers, 1..16 (default: 1)\n"
"      --topic=NAME[:PARTITIONS]\n"
"                          create topic NAME with PARTITIONS partitions, 1..10000\n"
"                          (default: 1; replication factor: brokers, at most 3);\n"
"                          repeatable\n"
"  -X, --property=KEY=VALUE  librdkafka property of the client handle hosting\n"
"                          the cluster (repeatable)\n"
"  -v, --verbose           more diagnostics\n"
"  -q, --quiet             errors only\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n";

struct topic {
	const char *name;
	int partitions;
};

struct options {
	int brokers;
	struct topic *topics;	/* room for one per argument */
	int ntopics;
};

/* Kafka accepts topic names of ASCII letters, digits, '.', '_' and '-'. */
static int
valid_topic_name(const char *name, size_t len)
{
	if (len == 0 || len > MAX_TOPIC_NAME)
		return 0;
	if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") < len)
		return 0;
	return !(len == 1 && name[0] == '.') && !(len == 2 && strncmp(name, "..", 2) == 0);
}

/*
 * Parse "NAME[:PARTITIONS]" in place (the colon becomes a NUL).  A topic
 * name cannot hold a colon, so the last one separates the count.
 */
static void
parse_topic(char *spec, struct topic *t)
{
	char *colon = strrchr(spec, ':'), *end;
	long n = 1;

	if (colon != NULL) {
		n = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || *end != '\0' || colon[1] == '-' || colon[1] == '+' ||
		    n < 1 || n > MAX_PARTITIONS)
			usage_error("--topic \"%s\": partitions must be a number in 1..%d",
			    spec, MAX_PARTITIONS);
		*colon = '\0';
	}
	if (!valid_topic_name(spec, strlen(spec))) {
		if (colon != NULL)
			*colon = ':';
		usage_error("--topic \"%s\": invalid topic name", spec);
	}
	t->name = spec;
	t->partitions = (int)n;
}

static void
add_topic(struct options *o, char *spec)
{
	struct topic *t = &o->topics[o->ntopics];
	int i;

	parse_topic(spec, t);
	for (i = 0; i < o->ntopics; i++)
		if (strcmp(o->topics[i].name, t->name) == 0)
			usage_error("topic \"%s\" given twice", t->name);
	o->ntopics++;
}

static void
parse_options(int argc, char **argv, struct options *o, rd_kafka_conf_t *conf)
{
	static const struct option longopts[] = {
		/* the cluster */
		{ "brokers", required_argument, NULL, 'B' },
		{ "topic", required_argument, NULL, 'T' },
		{ "property", required_argument, NULL, 'X' },
		OPT_GENERAL_LONG
	};
	int c;

	o->brokers = 1;
	if ((o->topics = calloc((size_t)argc, sizeof *o->topics)) == NULL)
		die("out of memory");
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":X:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'B': o->brokers = (int)opt_int("--brokers", optarg, 1, MAX_BROKERS); break;
		case 'T': add_topic(o, optarg); break;
		case 'X': kconf_set(conf, "-X", optarg); break;
		case 'v': log_level = LOG_DEBUG; break;
		case 'q': log_level = LOG_ERROR; break;
		case 'h': opt_help(usage_text);
		case 'V': opt_version();
		default: opt_bad(c, argv);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
}

/* Create the --topic topics; the mock cluster would otherwise make them on first use. */
static int
create_topics(rd_kafka_mock_cluster_t *mc, const struct options *o)
{
	int i, rf = o->brokers < 3 ? o->brokers : 3;
	rd_kafka_resp_err_t err;

	for (i = 0; i < o->ntopics; i++) {
		err = rd_kafka_mock_topic_create(mc, o->topics[i].name, o->topics[i].partitions, rf);
		if (err) {
			log_error("cannot create topic \"%s\": %s", o->topics[i].name,
			    rd_kafka_err2str(err));
			return -1;
		}
		log_debug("topic \"%s\": %d partition%s, replication factor %d",
		    o->topics[i].name, o->topics[i].partitions,
		    o->topics[i].partitions == 1 ? "" : "s", rf);
	}
	return 0;
}

/*
 * Print the address, then point standard output at /dev/null: a reader of
 * the pipe sees end of file, and no socket the cluster opens later can get
 * descriptor 1.  A reader that went away is no reason to stop serving.
 */
static void
print_address(const char *addr)
{
	int fd;

	if (printf("%s\n", addr) < 0 || fflush(stdout) != 0)
		log_warning("cannot write the address to standard output:");
	if ((fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0) {
		if (fd != STDOUT_FILENO) {
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
	}
	clearerr(stdout);
}

/* Sleep until SIGINT or SIGTERM; they are blocked except inside sigsuspend. */
static void
wait_for_signal(const sigset_t *unblocked)
{
	while (!sig_stop)
		sigsuspend(unblocked);
	log_debug("stopping on signal %d", (int)sig_stop);
}

int
main(int argc, char **argv)
{
	struct options opt = { 0 };
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	sigset_t stop, unblocked;
	char err[512];
	int status = EXIT_OK;

	log_init(argv[0]);
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, kconf_log_cb);
	parse_options(argc, argv, &opt, conf);

	/*
	 * Block the stop signals before librdkafka starts its threads, which
	 * inherit the mask: only the main thread, in sigsuspend, takes them.
	 */
	sig_install();
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, &unblocked);

	/* the cluster lives in a client handle; a producer needs no brokers to start */
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err)) == NULL)
		die("%s", err);
	if ((mc = rd_kafka_mock_cluster_new(rk, opt.brokers)) == NULL) {
		log_error("cannot start the mock cluster");
		status = EXIT_RUNTIME;
	} else {
		if (create_topics(mc, &opt) < 0) {
			status = EXIT_RUNTIME;
		} else {
			log_debug("%d broker%s at %s", opt.brokers, opt.brokers == 1 ? "" : "s",
			    rd_kafka_mock_cluster_bootstraps(mc));
			print_address(rd_kafka_mock_cluster_bootstraps(mc));
			/* what a user would not expect of a broker, said where it is started (see CAVEATS) */
			log_warning("a mock cluster for demos and tests: each partition keeps only its newest"
			    " 5 MiB or 100000 message sets and drops older messages without notice,"
			    " and a consumer group started again waits about 45 s for its partitions");
			wait_for_signal(&unblocked);
		}
		rd_kafka_mock_cluster_destroy(mc);
	}
	rd_kafka_destroy(rk);
	free(opt.topics);
	return status;
}
