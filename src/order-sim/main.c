/*
 * order-sim: write synthetic orders into public.orders of a source database,
 * from concurrent clients whose transactions overlap and commit out of order,
 * for the capture tools to have something to capture.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "opt.h"
#include "order-sim.h"
#include "pgconn.h"
#include "sig.h"

#define MAX_CLIENTS	1000
#define PLURAL(n)	((n) == 1 ? "" : "s")

/* long options without a short form */
enum {
	OPT_CLIENTS = 256,
	OPT_COUNT,
	OPT_DELETE_RATIO,
	OPT_DURATION,
	OPT_RATE,
	OPT_SEED,
	OPT_UPDATE_RATIO
};

static const struct option long_options[] = {
	/* connection */
	{ "dbname",		required_argument,	NULL, 'd' },
	/* workload */
	{ "clients",		required_argument,	NULL, OPT_CLIENTS },
	{ "count",		required_argument,	NULL, OPT_COUNT },
	{ "delete-ratio",	required_argument,	NULL, OPT_DELETE_RATIO },
	{ "duration",		required_argument,	NULL, OPT_DURATION },
	{ "rate",		required_argument,	NULL, OPT_RATE },
	{ "seed",		required_argument,	NULL, OPT_SEED },
	{ "update-ratio",	required_argument,	NULL, OPT_UPDATE_RATIO },
	/* general */
	OPT_GENERAL_LONG
};

#define STR(x)	#x
#define XSTR(x)	STR(x)

static const char usage_text[] =
"Usage: order-sim [OPTION]...\n"
"Write synthetic orders into the orders table of a source database, with\n"
"overlapping concurrent transactions.\n"
"\n"
"Options:\n"
"  -d, --dbname=CONNINFO   database to write to (default: the PG* environment)\n"
"      --clients=N         concurrent connections, 1.." XSTR(MAX_CLIENTS) " (default: 1)\n"
"      --count=N           stop after N committed changes (default: 0, no limit)\n"
"      --delete-ratio=R    fraction of changes that delete an order (default: 0)\n"
"      --duration=SECONDS  stop after this long (default: 0, no limit)\n"
"      --rate=N            changes per second, all clients together,\n"
"                          0 for as fast as possible (default: 10)\n"
"      --seed=N            seed for a repeatable run (default: random)\n"
"      --update-ratio=R    fraction of changes that update an order (default: 0.3)\n"
"  -v, --verbose           more diagnostics\n"
"  -q, --quiet             less: no summary line\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n";

/* A seed for runs without --seed, logged with -v so the run can be repeated. */
static uint64_t
random_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
	    (uint64_t)getpid() << 32) & LLONG_MAX;
}

static void
parse_options(int argc, char **argv, struct options *opt)
{
	bool seeded = false;
	int c;

	*opt = (struct options){ .rate = 10, .update_ratio = 0.3, .clients = 1 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:hqVv", long_options, NULL)) != -1) {
		switch (c) {
		case 'd':
			opt->conninfo = optarg;
			break;
		case OPT_CLIENTS:
			opt->clients = (int)opt_int("--clients", optarg, 1, MAX_CLIENTS);
			break;
		case OPT_COUNT:
			opt->count = opt_int("--count", optarg, 0, LLONG_MAX);
			break;
		case OPT_DELETE_RATIO:
			opt->delete_ratio = opt_double("--delete-ratio", optarg, 0, 1);
			break;
		case OPT_DURATION:
			opt->duration = opt_double("--duration", optarg, 0, 1e9);
			break;
		case OPT_RATE:
			opt->rate = opt_double("--rate", optarg, 0, 1e6);
			break;
		case OPT_SEED:
			opt->seed = (uint64_t)opt_int("--seed", optarg, 0, LLONG_MAX);
			seeded = true;
			break;
		case OPT_UPDATE_RATIO:
			opt->update_ratio = opt_double("--update-ratio", optarg, 0, 1);
			break;
		case 'q':
			if (log_level > LOG_QUIET)
				log_level--;
			break;
		case 'v':
			if (log_level < LOG_DEBUG)
				log_level++;
			break;
		case 'h':
			opt_help(usage_text);
		case 'V':
			opt_version();
		default:
			opt_bad(c, argv);
		}
	}
	if (optind < argc)
		usage_error("too many command-line arguments (first is \"%s\")", argv[optind]);
	if (opt->update_ratio + opt->delete_ratio > 1 + 1e-9)
		usage_error("--update-ratio and --delete-ratio add up to more than 1");
	if (!seeded)
		opt->seed = random_seed();
	log_debug("seed %llu", (unsigned long long)opt->seed);
}

/* Fail early and clearly when the source database lacks the orders table. */
static int
check_table(PGconn *conn)
{
	PGresult *res = PQexec(conn,
	    "SELECT pg_catalog.to_regclass('public.orders') IS NOT NULL");
	int rc = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_error("query failed: %s", pg_errmsg(conn));
	else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		log_error("table \"public.orders\" does not exist");
	else
		rc = 0;
	PQclear(res);
	return rc;
}

/* Connect every client before any starts, so a bad connection string fails at once. */
static int
setup_clients(struct client *clients, struct shared *sh)
{
	const struct options *opt = sh->opt;
	int i;

	for (i = 0; i < opt->clients; i++) {
		struct client *c = &clients[i];

		c->index = i;
		c->sh = sh;
		rng_seed(&c->rng, opt->seed + (uint64_t)i);
		if (pool_init(&c->pool) != 0) {
			log_error("out of memory");
			return -1;
		}
		c->conn = pg_connect(opt->conninfo);
		if (c->conn == NULL)
			return -1;
		PQsetNoticeProcessor(c->conn, client_notice, c);
		if (i == 0 && check_table(c->conn) != 0)
			return -1;
		if (prepare_statements(c->conn) != 0) {
			log_error("cannot prepare statements: %s", pg_errmsg(c->conn));
			return -1;
		}
	}
	return 0;
}

/*
 * Run the client threads until they end; SIGINT/SIGTERM are delivered to
 * this thread only, which tells the clients to stop.  Returns the number of
 * threads started.
 */
static int
run_clients(struct client *clients, struct shared *sh)
{
	const struct timespec tick = { 0, 20 * 1000 * 1000 };
	sigset_t block, old;
	int n = sh->opt->clients, i, err = 0;

	sig_install();
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	sh->start = mono_ms() / 1e3;
	sh->next_slot = sh->start;
	sh->deadline = sh->opt->duration > 0 ? sh->start + sh->opt->duration : 0;
	atomic_store(&sh->active, n);
	for (i = 0; i < n; i++) {
		err = pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
		if (err != 0)
			break;
	}
	if (err != 0) {
		errno = err;
		pthread_mutex_lock(&sh->lock);
		log_error("cannot start client %d:", i + 1);
		pthread_mutex_unlock(&sh->lock);
		atomic_store(&sh->failed, 1);
		atomic_store(&sh->stop, 1);
		atomic_fetch_sub(&sh->active, n - i);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (atomic_load(&sh->active) > 0) {
		if (sig_stop)
			atomic_store(&sh->stop, 1);
		nanosleep(&tick, NULL);
	}
	for (n = 0; n < i; n++)
		pthread_join(clients[n].thread, NULL);
	return i;
}

/* One line on stderr: what the clients committed, and how fast. */
static void
print_summary(const struct client *clients, int started, const struct shared *sh)
{
	struct client_stats sum = { 0, 0, 0, 0 };
	double end = sh->start, secs;
	long long changes;
	int i;

	for (i = 0; i < started; i++) {
		sum.inserts += clients[i].stats.inserts;
		sum.updates += clients[i].stats.updates;
		sum.deletes += clients[i].stats.deletes;
		sum.transactions += clients[i].stats.transactions;
		if (clients[i].finished > end)
			end = clients[i].finished;
	}
	secs = end - sh->start;
	changes = sum.inserts + sum.updates + sum.deletes;
	log_info("%lld change%s (%lld insert%s, %lld update%s, %lld delete%s)"
	    " in %lld transaction%s by %d client%s in %.1f s, %.1f changes/s",
	    changes, PLURAL(changes), sum.inserts, PLURAL(sum.inserts),
	    sum.updates, PLURAL(sum.updates), sum.deletes, PLURAL(sum.deletes),
	    sum.transactions, PLURAL(sum.transactions),
	    sh->opt->clients, PLURAL(sh->opt->clients),
	    secs, secs > 0 ? (double)changes / secs : 0.0);
}

int
main(int argc, char **argv)
{
	struct options opt;
	struct shared sh = { 0 };
	struct client *clients;
	int i, started, status = EXIT_RUNTIME;

	log_init(argv[0]);
	parse_options(argc, argv, &opt);
	clients = calloc((size_t)opt.clients, sizeof *clients);
	if (clients == NULL)
		die("out of memory");
	sh.opt = &opt;
	pthread_mutex_init(&sh.lock, NULL);

	if (setup_clients(clients, &sh) == 0) {
		started = run_clients(clients, &sh);
		print_summary(clients, started, &sh);
		status = atomic_load(&sh.failed) ? EXIT_RUNTIME : EXIT_OK;
	}

	for (i = 0; i < opt.clients; i++) {
		PQfinish(clients[i].conn);
		pool_free(&clients[i].pool);
	}
	free(clients);
	pthread_mutex_destroy(&sh.lock);
	return status;
}
