/* kafka-sub's command line, and the librdkafka defaults -X and -F change. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kconf.h"
#include "log.h"
#include "opt.h"
#include "options.h"

static const char usage_text[] =
"Usage: kafka-sub [OPTION]... -t TOPIC...\n"
"Write each message value of Kafka topics as one line of standard output.\n"
"\n"
"Options:\n"
"  -b, --brokers=LIST      bootstrap brokers (default: $KAFKA_BROKERS, else localhost:9092)\n"
"  -t, --topic=TOPIC       topic to read, or with a leading ^ a regular expression\n"
"                          matching topics to read (needs -g); repeatable, at least one\n"
"  -g, --group=ID          consumer group (default: kafka-sub)\n"
"  -o, --offset=WHERE      where a partition new to the group starts: beginning, end,\n"
"                          stored (default), OFFSET, -N (N before the end) or\n"
"                          s@MS (the first message at or after MS since the epoch)\n"
"  -e, --exit-at-end       exit once every assigned partition is at its end\n"
"  -c, --count=N           exit after N messages\n"
"  -X, --property=KEY=VALUE  librdkafka property (repeatable)\n"
"  -F, --config=FILE       librdkafka properties file (key=value lines)\n"
"      --ack=FILE          commit only what FILE says downstream has made durable\n"
"      --window=N          most lines unacknowledged at once with --ack (default: 100000)\n"
"      --ack-timeout=MS    wait at exit for the last acknowledgements (default: 30000)\n"
"      --dlq=FILE          append dead letters to FILE (default: stderr)\n"
"      --lag               print the group's committed offset, end and lag of each\n"
"                          partition of the topics, and exit (the group not joined)\n"
"      --origin            add the message's topic, partition and offset to each\n"
"                          line, as its last member \"kafka\" (JSON objects only)\n"
STATS_USAGE
"  -v, --verbose           more diagnostics\n"
"  -q, --quiet             errors only\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n";

/* -o: a name, an absolute offset, -N from the end, or s@MS (kcat's forms). */
static void
parse_start(struct options *o, const char *arg)
{
	static const char *const names[] = { "stored", "beginning", "end" };
	const char *digits = arg;
	char *end = NULL;
	size_t i;

	for (i = 0; i < sizeof names / sizeof *names; i++)
		if (strcmp(arg, names[i]) == 0) {
			o->start = (enum start)i;
			return;
		}
	o->start = START_OFFSET;
	if (*arg == '-') {
		o->start = START_TAIL;
		digits = arg + 1;
	} else if (strncmp(arg, "s@", 2) == 0) {
		o->start = START_TIME;
		digits = arg + 2;
	}
	errno = 0;
	o->start_at = *digits >= '0' && *digits <= '9' ? strtoll(digits, &end, 10) : -1;
	if (o->start_at < 0 || errno != 0 || *end != '\0' || (o->start == START_TAIL && o->start_at == 0))
		usage_error("invalid value \"%s\" for option -o (beginning, end, stored, OFFSET, -N or s@MS)", arg);
}

void
parse_options(int argc, char **argv, struct options *o, rd_kafka_conf_t *conf)
{
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic", required_argument, NULL, 't' },
		{ "group", required_argument, NULL, 'g' },
		{ "offset", required_argument, NULL, 'o' },
		{ "exit-at-end", no_argument, NULL, 'e' },
		{ "count", required_argument, NULL, 'c' },
		{ "property", required_argument, NULL, 'X' },
		{ "config", required_argument, NULL, 'F' },
		{ "ack", required_argument, NULL, 'A' },
		{ "window", required_argument, NULL, 'W' },
		{ "ack-timeout", required_argument, NULL, 'T' },
		{ "dlq", required_argument, NULL, 'D' },
		{ "origin", no_argument, NULL, 'O' },
		{ "lag", no_argument, NULL, 'L' },
		STATS_LONGOPTS,
		OPT_GENERAL_LONG
	};
	const char *brokers = NULL;
	char err[512];
	int c;

	o->topics = calloc(argc, sizeof *o->topics);
	if (o->topics == NULL)
		die("out of memory");
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":b:t:g:o:ec:X:F:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': brokers = optarg; break;
		case 't':
			if (*optarg == '\0')
				usage_error("topic name must not be empty");
			o->topics[o->ntopics++] = optarg;
			o->npatterns += *optarg == '^';
			break;
		case 'g': o->group = optarg; o->group_given = 1; break;
		case 'o': parse_start(o, optarg); break;
		case 'e': o->exit_at_end = 1; break;
		case 'c': o->count = opt_int("-c", optarg, 1, INT64_MAX); break;
		case 'X': kconf_set(conf, "-X", optarg); break;
		case 'F': kconf_file(conf, optarg); break;
		case 'A': o->ack = optarg; break;
		case 'W': o->window = opt_int("--window", optarg, 1, 10000000); break;
		case 'T': o->ack_timeout_ms = opt_int("--ack-timeout", optarg, 0, 86400000); break;
		case 'D': o->dlq = optarg; break;
		case 'O': o->origin = 1; break;
		case 'L': o->lag = 1; break;
		default:
			if (!stats_option(&o->stats, c, optarg))
				opt_general(c, argv, usage_text);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (o->ntopics == 0)
		usage_error("no topic given (use -t TOPIC)");
	/* a pattern's topics are shared out in a group: a default one would mix unrelated readers */
	if (o->npatterns > 0 && !o->group_given)
		usage_error("a topic pattern (-t ^...) needs a group (-g ID)");
	if (*o->group == '\0')
		usage_error("group must not be empty");
	if (o->ack && *o->ack == '\0')
		usage_error("--ack needs a file name");
	kconf_brokers(conf, brokers);
	if (rd_kafka_conf_set(conf, "group.id", o->group, err, sizeof err) != RD_KAFKA_CONF_OK)
		usage_error("%s", err);
}

rd_kafka_conf_t *
default_conf(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	/* offsets are committed by hand, only for what is durable downstream */
	kconf_set(conf, "default", "enable.auto.commit=false");
	kconf_set(conf, "default", "enable.auto.offset.store=false");
	kconf_set(conf, "default", "enable.partition.eof=true");
	kconf_set(conf, "default", "auto.offset.reset=earliest");
	/*
	 * librdkafka prefetches up to 100,000 messages or 64 MiB by default,
	 * some 100 MiB of memory for 200-byte messages.  Half the messages and
	 * a quarter of the bytes keep up (tests/bench/kafka.sh): librdkafka 2.0
	 * looks again at a full queue only once a second, but refill() in
	 * main.c wakes it as soon as the queue drains, so a reader slower than
	 * the broker still gets all it can take.
	 */
	kconf_set(conf, "default", "queued.min.messages=50000");
	kconf_set(conf, "default", "queued.max.messages.kbytes=16384");
	/*
	 * Up to 2 MiB per partition and fetch (librdkafka: 1 MiB): half the
	 * round trips, each of which the broker thread waits out before it
	 * fetches again; 300k 200-byte messages of 3 partitions: 0.73 s
	 * instead of 0.88 (median of 8, tests/bench/kafka.sh's data), the
	 * largest RSS 41 MiB
	 */
	kconf_set(conf, "default", "fetch.message.max.bytes=2097152");
	/* a fetch at a partition's end waits this long for data, and a fetch
	 * after a full local queue or an error is put off this long (both 500 ms
	 * by default): each delays -e by as much; 100 ms costs an idle consumer little */
	kconf_set(conf, "default", "fetch.wait.max.ms=100");
	kconf_set(conf, "default", "fetch.error.backoff.ms=100");
	/* how soon a topic created later that a pattern matches is read (default 300000) */
	kconf_set(conf, "default", "topic.metadata.refresh.interval.ms=5000");
	return conf;
}

