/*
 * pg-upsert's command line: the options, their defaults and checks, and
 * --help.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "opt.h"
#include "upsert.h"

static const char usage_text[] =
"Usage: pg-upsert [OPTION]... -t TABLE\n"
"       pg-upsert [OPTION]... --map=SRC=DST...\n"
"Apply CDC events from standard input to tables, idempotently and in any order.\n"
"\n"
"Options:\n"
"  -d, --dbname=CONNINFO   warehouse database (default: the PG* environment)\n"
"  -t, --table=TABLE       target table of the first source table seen\n"
"      --map=SRC=DST       apply source table SRC (schema.table, schema.* or *.*) to DST\n"
"                          (schema.table, or schema.*), renaming COL=COL,... in (...)\n"
"      --unmapped=ACTION   events of tables with no mapping: dlq or skip (default: dlq)\n"
"      --create            create a missing target table from a schema event\n"
"      --evolve            add the columns and follow the types schema events change\n"
"      --key=COLS          key columns, comma-separated (default: the primary key)\n"
"      --pos-column=COL    guard column holding the event's pos (default: cdc_pos)\n"
"      --delete=MODE       soft (set is_deleted) or hard (default: soft with is_deleted)\n"
"      --batch=N           most events per transaction (default: 5000)\n"
"      --batch-bytes=N     most bytes of events per transaction (default: 64M)\n"
"      --linger=MS         longest wait to fill a batch (default: 0)\n"
"      --ack=FILE          keep the count of input lines committed in FILE\n"
"      --dlq=FILE          append dead letters to FILE (default: stderr)\n"
"      --dlq-table=TABLE   also insert dead letters into TABLE (raw_value, error_message)\n"
"      --replay            the input is dead-letter records: apply the line each holds\n"
STATS_USAGE
"  -v, --verbose           more diagnostics\n"
"  -q, --quiet             errors only\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n";

enum {
	OPT_KEY = 256, OPT_POS, OPT_DELETE, OPT_BATCH, OPT_BATCH_BYTES, OPT_LINGER, OPT_ACK, OPT_DLQ,
	OPT_DLQ_TABLE, OPT_MAP, OPT_UNMAPPED, OPT_CREATE, OPT_EVOLVE, OPT_REPLAY
};

/*
 * --batch-bytes: a count of bytes, with an optional k, M or G (powers of
 * 1024), from 1k to 512M: half the 1 GiB a protocol message may hold, as
 * the statement sends arrays beside the rows.
 */
static long long
opt_size(const char *opt, const char *arg)
{
	char num[32];
	size_t len = strlen(arg);
	int shift = 0;
	long long v;

	if (len >= sizeof num)
		usage_error("invalid value \"%s\" for option %s", arg, opt);
	memcpy(num, arg, len + 1);
	if (len > 0 && strchr("kMG", num[len - 1])) {
		shift = num[len - 1] == 'k' ? 10 : num[len - 1] == 'M' ? 20 : 30;
		num[--len] = '\0';
	}
	if (len == 0 || strspn(num, "0123456789") != len)
		usage_error("invalid value \"%s\" for option %s", arg, opt);
	v = len > 12 ? LLONG_MAX : opt_int(opt, num, 0, LLONG_MAX);
	if (v > (512LL << 20) >> shift || v << shift < 1024)
		usage_error("%s must be in range 1k..512M", opt);
	return v << shift;
}

/* One more --map rule. */
static void
add_map(struct options *o, const char *arg)
{
	if ((o->maps = realloc(o->maps, (o->nmaps + 1) * sizeof *o->maps)) == NULL)
		die("out of memory");
	map_parse(arg, &o->maps[o->nmaps++]);
}

void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "dbname", required_argument, NULL, 'd' },
		{ "table", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "pos-column", required_argument, NULL, OPT_POS },
		{ "delete", required_argument, NULL, OPT_DELETE },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "batch-bytes", required_argument, NULL, OPT_BATCH_BYTES },
		{ "linger", required_argument, NULL, OPT_LINGER },
		{ "ack", required_argument, NULL, OPT_ACK },
		{ "dlq", required_argument, NULL, OPT_DLQ },
		{ "dlq-table", required_argument, NULL, OPT_DLQ_TABLE },
		{ "map", required_argument, NULL, OPT_MAP },
		{ "unmapped", required_argument, NULL, OPT_UNMAPPED },
		{ "create", no_argument, NULL, OPT_CREATE },
		{ "evolve", no_argument, NULL, OPT_EVOLVE },
		{ "replay", no_argument, NULL, OPT_REPLAY },
		STATS_LONGOPTS,
		OPT_GENERAL_LONG
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:t:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o->conninfo = optarg; break;
		case 't': o->table = optarg; break;
		case OPT_KEY: o->key = optarg; break;
		case OPT_POS: o->pos_column = optarg; break;
		case OPT_DELETE:
			if (strcmp(optarg, "soft") == 0)
				o->del = DELETE_SOFT;
			else if (strcmp(optarg, "hard") == 0)
				o->del = DELETE_HARD;
			else
				usage_error("invalid value \"%s\" for option --delete (soft or hard)", optarg);
			break;
		case OPT_BATCH: o->batch = opt_int("--batch", optarg, 1, 1000000); break;
		case OPT_BATCH_BYTES: o->batch_bytes = opt_size("--batch-bytes", optarg); break;
		case OPT_LINGER: o->linger_ms = opt_int("--linger", optarg, 0, 3600000); break;
		case OPT_ACK: o->ack = optarg; break;
		case OPT_DLQ: o->dlq = optarg; break;
		case OPT_DLQ_TABLE: o->dlq_table = optarg; break;
		case OPT_MAP: add_map(o, optarg); break;
		case OPT_UNMAPPED:
			if (strcmp(optarg, "dlq") == 0)
				o->unmapped = UNMAPPED_DLQ;
			else if (strcmp(optarg, "skip") == 0)
				o->unmapped = UNMAPPED_SKIP;
			else
				usage_error("invalid value \"%s\" for option --unmapped (dlq or skip)", optarg);
			break;
		case OPT_CREATE: o->create = 1; break;
		case OPT_EVOLVE: o->evolve = 1; break;
		case OPT_REPLAY: o->replay = 1; break;
		default:
			if (!stats_option(&o->stats, c, optarg))
				opt_general(c, argv, usage_text);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (o->table && o->nmaps > 0)
		usage_error("-t and --map cannot be used together");
	if (o->nmaps == 0 && (o->table == NULL || *o->table == '\0'))
		usage_error("no table given (use -t TABLE or --map SRC=DST)");
	maps_check(o->maps, o->nmaps);
	if (o->key && (*o->key == '\0' || strstr(o->key, ",,") || *o->key == ',' ||
	    o->key[strlen(o->key) - 1] == ','))
		usage_error("invalid value \"%s\" for option --key", o->key);
	if (*o->pos_column == '\0')
		usage_error("--pos-column needs a column name");
	if (o->ack && *o->ack == '\0')
		usage_error("--ack needs a file name");
}
