/*
 * One client: a connection and a thread running short transactions of one to
 * three changes.  Clients pace themselves together against --rate and share
 * the --count budget, so their transactions overlap and commit out of order.
 * A client updates and deletes only the orders it inserted itself, so clients
 * never wait for each other's row locks or deadlock.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "order-sim.h"
#include "pgconn.h"

/* A stalled client may catch up this far behind the schedule, no further. */
#define PACE_SLACK	0.1
#define NAP_MAX		0.05	/* longest sleep between looks at the stop flags */

/* Log one line from a client thread: log.c's lines and pg_errmsg()'s buffer are not thread-safe. */
#define CLIENT_LOG(c, fn, ...) do {				\
		pthread_mutex_lock(&(c)->sh->lock);		\
		fn(__VA_ARGS__);				\
		pthread_mutex_unlock(&(c)->sh->lock);		\
	} while (0)

enum op { OP_INSERT, OP_UPDATE, OP_DELETE };

/* One change of the transaction in progress. */
struct change {
	enum op op;
	size_t slot;		/* pool index of the order updated or deleted */
	enum status status;	/* status after the change */
	int rows;		/* rows it touched: 0 when the order was gone */
	char id[UUID_STR];
};

struct tx {
	struct change ch[MAX_TX_CHANGES];
	int n;
	/* pg_current_xact_id(), to ask after a lost COMMIT reply whether it took effect */
	char txid[24];
};

enum tx_result {
	TX_DONE,	/* committed */
	TX_IDLE,	/* nothing to do now: stopping, or --count all claimed */
	TX_RETRY,	/* rolled back by the server (deadlock, serialization): go on */
	TX_LOST,	/* connection lost: reconnect */
	TX_FAILED	/* an error retrying cannot fix */
};

static const struct {
	const char *name;
	const char *sql;
	int nparams;
} statements[] = {
	{ "ins", "INSERT INTO public.orders"
	    " (id, user_id, status, amount_cents, currency, country)"
	    " VALUES ($1, $2, $3, $4, $5, $6)"
	    " RETURNING pg_catalog.pg_current_xact_id()", 6 },
	{ "upd", "UPDATE public.orders SET status = $2 WHERE id = $1"
	    " RETURNING pg_catalog.pg_current_xact_id()", 2 },
	{ "del", "DELETE FROM public.orders WHERE id = $1"
	    " RETURNING pg_catalog.pg_current_xact_id()", 1 },
	{ "xact_status", "SELECT pg_catalog.pg_xact_status($1::xid8)", 1 },
};

static void
nap(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* Prepare the statements on a new session; the error stays in PQerrorMessage(). */
int
prepare_statements(PGconn *conn)
{
	size_t i;

	for (i = 0; i < sizeof statements / sizeof statements[0]; i++) {
		PGresult *res = PQprepare(conn, statements[i].name,
		    statements[i].sql, statements[i].nparams, NULL);
		int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

		PQclear(res);
		if (!ok)
			return -1;
	}
	return 0;
}

/* Server notices (e.g. a ROLLBACK after a failed COMMIT) are only worth a debug line. */
void
client_notice(void *arg, const char *msg)
{
	struct client *c = arg;

	CLIENT_LOG(c, log_debug, "client %d: %.*s", c->index + 1,
	    (int)strcspn(msg, "\n"), msg);
}

/* False once a signal, a failed client or --duration says to stop. */
static bool
keep_going(struct shared *sh)
{
	return !atomic_load(&sh->stop) &&
	    (sh->deadline == 0 || mono_ms() / 1e3 < sh->deadline);
}

static bool
count_done(struct shared *sh)
{
	bool done;

	pthread_mutex_lock(&sh->lock);
	done = sh->opt->count > 0 && sh->committed >= sh->opt->count;
	pthread_mutex_unlock(&sh->lock);
	return done;
}

/* Sleep until monotonic time t in short naps; false if told to stop meanwhile. */
static bool
sleep_until(struct shared *sh, double t)
{
	for (;;) {
		double now = mono_ms() / 1e3;

		if (!keep_going(sh))
			return false;
		if (now >= t)
			return true;
		nap(t - now < NAP_MAX ? t - now : NAP_MAX);
	}
}

/* Claim one change of --count; false when all are claimed (some may still fail and come back). */
static bool
take_budget(struct shared *sh)
{
	bool ok;

	pthread_mutex_lock(&sh->lock);
	ok = sh->opt->count == 0 || sh->taken < sh->opt->count;
	if (ok)
		sh->taken++;
	pthread_mutex_unlock(&sh->lock);
	return ok;
}

/* Account for claimed changes: some committed, the others given back. */
static void
settle(struct shared *sh, long long given_back, long long committed)
{
	pthread_mutex_lock(&sh->lock);
	sh->taken -= given_back;
	sh->committed += committed;
	pthread_mutex_unlock(&sh->lock);
}

/*
 * Wait for this change's turn: the clients share one schedule with a slot
 * every 1/--rate seconds, so changes are spread evenly rather than sent in
 * bursts.  False if told to stop before the turn came.
 */
static bool
pace(struct shared *sh)
{
	double slot, now;

	if (sh->opt->rate <= 0)
		return keep_going(sh);
	pthread_mutex_lock(&sh->lock);
	now = mono_ms() / 1e3;
	slot = sh->next_slot;
	if (slot < now - PACE_SLACK)
		slot = now - PACE_SLACK;
	sh->next_slot = slot + 1.0 / sh->opt->rate;
	pthread_mutex_unlock(&sh->lock);
	return sleep_until(sh, slot);
}

/* Pick one of this client's live orders not already changed in this transaction. */
static bool
pick_order(struct client *c, const struct tx *tx, size_t *slot)
{
	size_t n = c->pool.n, i, probe;
	int k;

	if (n == 0)
		return false;
	i = rng_below(&c->rng, n);
	for (probe = 0; probe <= MAX_TX_CHANGES && probe < n; probe++) {
		size_t s = (i + probe) % n;

		for (k = 0; k < tx->n; k++)
			if (tx->ch[k].op != OP_INSERT && tx->ch[k].slot == s)
				break;
		if (k == tx->n) {
			*slot = s;
			return true;
		}
	}
	return false;
}

/* Decide the next change: the odds of --update-ratio/--delete-ratio, else (or with nothing to change) an insert. */
static void
plan_change(struct client *c, const struct tx *tx, struct change *ch, struct order *o)
{
	const struct options *opt = c->sh->opt;
	double u = rng_unit(&c->rng);

	if (u < opt->delete_ratio)
		ch->op = OP_DELETE;
	else if (u < opt->delete_ratio + opt->update_ratio)
		ch->op = OP_UPDATE;
	else
		ch->op = OP_INSERT;
	if (ch->op != OP_INSERT && !pick_order(c, tx, &ch->slot))
		ch->op = OP_INSERT;
	ch->rows = 0;
	if (ch->op == OP_INSERT) {
		order_new(&c->rng, opt->seed, o);
		memcpy(ch->id, o->id, UUID_STR);
		ch->status = ST_CREATED;
	} else {
		const struct live_order *lo = &c->pool.v[ch->slot];

		memcpy(ch->id, lo->id, UUID_STR);
		ch->status = ch->op == OP_UPDATE ?
		    status_next(&c->rng, lo->status) : lo->status;
	}
}

static PGresult *
exec_change(struct client *c, const struct change *ch, const struct order *o)
{
	const char *p[6];

	switch (ch->op) {
	case OP_INSERT:
		p[0] = o->id;
		p[1] = o->user_id;
		p[2] = o->status;
		p[3] = o->amount_cents;
		p[4] = o->currency;
		p[5] = o->country;
		return PQexecPrepared(c->conn, "ins", 6, p, NULL, NULL, 0);
	case OP_UPDATE:
		p[0] = ch->id;
		p[1] = status_name(ch->status);
		return PQexecPrepared(c->conn, "upd", 2, p, NULL, NULL, 0);
	case OP_DELETE:
	default:
		p[0] = ch->id;
		return PQexecPrepared(c->conn, "del", 1, p, NULL, NULL, 0);
	}
}

/* Classify a failed statement: a lost connection, a transient error, or a real failure. */
static enum tx_result
failure(struct client *c, const PGresult *res, const char *what)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (PQstatus(c->conn) != CONNECTION_OK || state == NULL ||
	    strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		return TX_LOST;
	if (strncmp(state, "40", 2) == 0 || strcmp(state, "57014") == 0) {
		CLIENT_LOG(c, log_debug, "client %d: %s rolled back: %s",
		    c->index + 1, what, pg_errmsg(c->conn));
		return TX_RETRY;
	}
	CLIENT_LOG(c, log_error, "client %d: %s failed: %s", c->index + 1,
	    what, pg_errmsg(c->conn));
	return TX_FAILED;
}

/* Give up the transaction: roll it back if the session is still there, give back its changes. */
static enum tx_result
abandon(struct client *c, const struct tx *tx, enum tx_result r)
{
	if (r != TX_LOST)
		PQclear(PQexec(c->conn, "ROLLBACK"));
	settle(c->sh, tx->n, 0);
	return r;
}

static void
fail(struct shared *sh)
{
	atomic_store(&sh->failed, 1);
	atomic_store(&sh->stop, 1);
}

/*
 * Reconnect after the server went away, waiting 100 ms, doubling up to 5 s,
 * between attempts.  False if told to stop meanwhile, or if the new session
 * cannot prepare the statements (a failure, not something to wait out).
 */
static bool
reconnect(struct client *c)
{
	struct backoff wait = BACKOFF_INIT;
	double lost = mono_ms() / 1e3;

	CLIENT_LOG(c, log_warning, "client %d: connection lost: %s",
	    c->index + 1, pg_errmsg(c->conn));
	for (;;) {
		if (!sleep_until(c->sh, mono_ms() / 1e3 + backoff_next(&wait) / 1e3))
			return false;
		PQreset(c->conn);
		if (PQstatus(c->conn) == CONNECTION_OK) {
			if (prepare_statements(c->conn) == 0) {
				CLIENT_LOG(c, log_info, "client %d: reconnected after %.1f s",
				    c->index + 1, mono_ms() / 1e3 - lost);
				return true;
			}
			if (PQstatus(c->conn) == CONNECTION_OK) {
				CLIENT_LOG(c, log_error, "client %d: cannot prepare statements: %s",
				    c->index + 1, pg_errmsg(c->conn));
				fail(c->sh);
				return false;
			}
		}
		CLIENT_LOG(c, log_debug, "client %d: reconnecting: %s",
		    c->index + 1, pg_errmsg(c->conn));
	}
}

/* After a COMMIT whose reply was lost, and a reconnect: did it commit? */
static bool
committed_anyway(struct client *c, const char *txid)
{
	const char *p[1] = { txid };
	PGresult *res = PQexecPrepared(c->conn, "xact_status", 1, p, NULL, NULL, 0);
	bool yes = false, known = false;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		known = !PQgetisnull(res, 0, 0);
		yes = strcmp(PQgetvalue(res, 0, 0), "committed") == 0;
	}
	PQclear(res);
	if (!known)
		CLIENT_LOG(c, log_warning, "client %d: cannot tell whether transaction %s committed; not counted",
		    c->index + 1, txid);
	return yes;
}

static void
sort_descending(size_t *v, int n)
{
	int i, j;

	for (i = 1; i < n; i++)
		for (j = i; j > 0 && v[j - 1] < v[j]; j--) {
			size_t t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
}

/* A transaction committed: count its changes and bring the pool up to date. */
static void
apply(struct client *c, const struct tx *tx)
{
	size_t gone[MAX_TX_CHANGES];
	int ngone = 0, i;
	long long done = 0;

	for (i = 0; i < tx->n; i++) {
		const struct change *ch = &tx->ch[i];

		if (ch->op != OP_INSERT && (ch->rows == 0 || ch->op == OP_DELETE ||
		    status_final(ch->status)))
			gone[ngone++] = ch->slot;
		else if (ch->op == OP_UPDATE)
			c->pool.v[ch->slot].status = ch->status;
		if (ch->rows == 0)
			continue;
		done++;
		if (ch->op == OP_INSERT)
			c->stats.inserts++;
		else if (ch->op == OP_UPDATE)
			c->stats.updates++;
		else
			c->stats.deletes++;
	}
	/* removing the highest slot first keeps the lower slots in place */
	sort_descending(gone, ngone);
	for (i = 0; i < ngone; i++)
		pool_remove(&c->pool, gone[i]);
	for (i = 0; i < tx->n; i++)
		if (tx->ch[i].op == OP_INSERT)
			pool_add(&c->pool, tx->ch[i].id, ST_CREATED);
	if (done > 0)
		c->stats.transactions++;
	settle(c->sh, tx->n - done, done);
}

static enum tx_result
commit(struct client *c, struct tx *tx)
{
	PGresult *res = PQexec(c->conn, "COMMIT");
	enum tx_result r = TX_DONE;

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		r = failure(c, res, "commit");
	PQclear(res);
	if (r == TX_LOST && tx->txid[0] != '\0') {
		/* the reply is lost, not necessarily the commit */
		if (!reconnect(c)) {
			settle(c->sh, tx->n, 0);
			return TX_IDLE;
		}
		if (!committed_anyway(c, tx->txid))
			return abandon(c, tx, TX_RETRY);
		r = TX_DONE;
	}
	if (r != TX_DONE)
		return abandon(c, tx, r);
	apply(c, tx);
	return TX_DONE;
}

/* BEGIN, one to three changes each in its turn, COMMIT. */
static enum tx_result
run_transaction(struct client *c)
{
	struct tx tx = { .n = 0 };
	int planned = 1 + (int)rng_below(&c->rng, MAX_TX_CHANGES);

	tx.txid[0] = '\0';
	while (tx.n < planned) {
		struct change *ch = &tx.ch[tx.n];
		struct order o;
		PGresult *res;
		enum tx_result r = TX_DONE;

		if (!take_budget(c->sh))
			break;
		if (!pace(c->sh)) {
			settle(c->sh, 1, 0);
			break;
		}
		plan_change(c, &tx, ch, &o);
		tx.n++;
		if (tx.n == 1) {
			res = PQexec(c->conn, "BEGIN");
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				r = failure(c, res, "begin");
			PQclear(res);
			if (r != TX_DONE)
				return abandon(c, &tx, r);
		}
		res = exec_change(c, ch, &o);
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			ch->rows = PQntuples(res);
			if (ch->rows > 0)
				snprintf(tx.txid, sizeof tx.txid, "%s", PQgetvalue(res, 0, 0));
		} else {
			r = failure(c, res, "write");
		}
		PQclear(res);
		if (r != TX_DONE)
			return abandon(c, &tx, r);
	}
	if (tx.n == 0)
		return TX_IDLE;
	return commit(c, &tx);
}

/* A client thread: transactions until stopped, --count is reached, or a failure. */
void *
client_main(void *arg)
{
	struct client *c = arg;
	struct shared *sh = c->sh;
	bool run = true;

	while (run && keep_going(sh) && !count_done(sh)) {
		switch (run_transaction(c)) {
		case TX_DONE:
			break;
		case TX_IDLE:
		case TX_RETRY:
			nap(0.01);
			break;
		case TX_LOST:
			run = reconnect(c);
			break;
		case TX_FAILED:
			fail(sh);
			run = false;
			break;
		}
	}
	c->finished = mono_ms() / 1e3;
	atomic_fetch_sub(&sh->active, 1);
	return NULL;
}
