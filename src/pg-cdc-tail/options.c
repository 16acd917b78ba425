/*
 * pg-cdc-tail's command line: the usage text, the options and the checks of
 * the options that need or exclude each other.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "opt.h"
#include "tail.h"

static const char usage_text[] =
"Usage: pg-cdc-tail [OPTION]... [-t TABLE]...\n"
"       pg-cdc-tail --mode=logical --slot=NAME --publication=NAME [OPTION]... [-t TABLE]...\n"
"Emit the committed changes of captured PostgreSQL tables as CDC events, one\n"
"JSON object per line, from the position stored under the consumer name\n"
"(trigger mode) or in a replication slot (logical mode).\n"
"\n"
"Options:\n"
"  -d, --dbname=CONNINFO   source database (default: the PG* environment)\n"
"  -t, --table=TABLE       table to read, or a pattern such as 'public.*'; repeatable;\n"
"                          default: every captured table (trigger mode) or every\n"
"                          table of the publication (logical mode)\n"
"  -n, --name=NAME         consumer whose position is stored (default: pg-cdc-tail)\n"
"      --mode=MODE         trigger (change-log tables, the default) or logical (WAL)\n"
"      --slot=NAME         logical mode: the replication slot holding the position\n"
"      --publication=NAME  logical mode: the publication whose tables are streamed\n"
"      --create-slot       logical mode: create the slot and publication if missing\n"
"      --drop-slot         logical mode: drop the slot and exit\n"
"  -f, --follow            keep tailing; without it, drain what is committed and exit\n"
"      --poll=MS           poll interval when no notification comes (default: 1000)\n"
"      --batch=N           log rows read per query (default: 5000)\n"
"      --ack=FILE          store positions only once FILE says downstream has them\n"
"      --window=N          most lines unacknowledged at once with --ack (default: 100000)\n"
"      --ack-timeout=MS    wait at exit for the last acknowledgements (default: 30000)\n"
"      --snapshot          first emit the tables' current rows as op \"r\" events\n"
"      --schema-events     emit a table's columns and key (op \"s\") before its first\n"
"                          change and before the first change after they change\n"
"      --prune             delete log rows that every consumer has passed\n"
STATS_USAGE"  -v, --verbose           more diagnostics\n"
"  -q, --quiet             errors only\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n";


enum {
	OPT_POLL = 256, OPT_BATCH, OPT_ACK, OPT_WINDOW, OPT_ACK_TIMEOUT, OPT_SNAPSHOT, OPT_PRUNE,
	OPT_MODE, OPT_SLOT, OPT_PUBLICATION, OPT_CREATE_SLOT, OPT_DROP_SLOT, OPT_SCHEMA_EVENTS
};

static void check_options(const struct options *o);

void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		/* source */
		{ "dbname", required_argument, NULL, 'd' },
		{ "table", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "snapshot", no_argument, NULL, OPT_SNAPSHOT },
		{ "schema-events", no_argument, NULL, OPT_SCHEMA_EVENTS },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "slot", required_argument, NULL, OPT_SLOT },
		{ "publication", required_argument, NULL, OPT_PUBLICATION },
		{ "create-slot", no_argument, NULL, OPT_CREATE_SLOT },
		{ "drop-slot", no_argument, NULL, OPT_DROP_SLOT },
		/* reading */
		{ "follow", no_argument, NULL, 'f' },
		{ "poll", required_argument, NULL, OPT_POLL },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "prune", no_argument, NULL, OPT_PRUNE },
		/* delivery */
		{ "ack", required_argument, NULL, OPT_ACK },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "ack-timeout", required_argument, NULL, OPT_ACK_TIMEOUT },
		/* reports */
		STATS_LONGOPTS,
		/* general */
		OPT_GENERAL_LONG
	};
	int c;

	o->tables = calloc(argc, sizeof *o->tables);
	if (o->tables == NULL)
		die("out of memory");
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:t:n:fvqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o->conninfo = optarg; break;
		case 't': o->tables[o->ntables++] = optarg; break;
		case 'n': o->name = optarg; break;
		case 'f': o->follow = 1; break;
		case OPT_POLL: o->poll_ms = opt_int("--poll", optarg, 1, 3600000); break;
		case OPT_BATCH: o->batch = opt_int("--batch", optarg, 1, 1000000); break;
		case OPT_ACK: o->ack = optarg; break;
		case OPT_WINDOW: o->window = opt_int("--window", optarg, 1, 10000000); break;
		case OPT_ACK_TIMEOUT:
			o->ack_timeout_ms = opt_int("--ack-timeout", optarg, 0, 86400000);
			break;
		case OPT_SNAPSHOT: o->snapshot = 1; break;
		case OPT_SCHEMA_EVENTS: o->schema_events = 1; break;
		case OPT_PRUNE: o->prune = 1; break;
		case OPT_MODE:
			if (strcmp(optarg, "trigger") == 0)
				o->logical = 0;
			else if (strcmp(optarg, "logical") == 0)
				o->logical = 1;
			else
				usage_error("invalid value \"%s\" for option --mode (trigger or logical)", optarg);
			break;
		case OPT_SLOT: o->slot = optarg; break;
		case OPT_PUBLICATION: o->publication = optarg; break;
		case OPT_CREATE_SLOT: o->create_slot = 1; break;
		case OPT_DROP_SLOT: o->drop_slot = 1; break;
		default:
			if (!stats_option(&o->stats, c, optarg))
				opt_general(c, argv, usage_text);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	check_options(o);
	o->dynamic = o->ntables == 0;
	for (c = 0; c < o->ntables; c++)
		if (is_pattern(o->tables[c]))
			o->dynamic = 1;
}

/* The options that need or exclude each other, as usage errors. */
static void
check_options(const struct options *o)
{
	if (o->logical) {
		if (o->slot == NULL || *o->slot == '\0')
			usage_error("logical mode needs a slot (use --slot=NAME)");
		if (!o->drop_slot && (o->publication == NULL || *o->publication == '\0'))
			usage_error("logical mode needs a publication (use --publication=NAME)");
		if (o->prune)
			usage_error("--prune applies to trigger mode only");
	} else {
		if (o->slot || o->publication || o->create_slot || o->drop_slot)
			usage_error("--slot, --publication, --create-slot and --drop-slot need --mode=logical");
	}
	if (*o->name == '\0')
		usage_error("consumer name must not be empty");
	if (o->ack && *o->ack == '\0')
		usage_error("--ack needs a file name");
}
