/* order-sim: synthetic orders written by concurrent clients into public.orders. */
#ifndef ORDER_SIM_H
#define ORDER_SIM_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define UUID_STR	37	/* 36 characters and the NUL */
#define MAX_TX_CHANGES	3	/* changes per transaction: 1 to this many */
#define POOL_SIZE	10000	/* live orders a client remembers for updates and deletes */

/* The command line; read-only once the clients run. */
struct options {
	const char *conninfo;
	double rate;		/* changes per second, all clients together; 0: no limit */
	long long count;	/* stop after this many committed changes; 0: no limit */
	double duration;	/* stop after this many seconds; 0: no limit */
	double update_ratio;
	double delete_ratio;
	int clients;
	uint64_t seed;
};

/* gen.c: seeded random order data */

struct rng {
	uint64_t state;
};

enum status { ST_CREATED, ST_PAID, ST_SHIPPED, ST_DELIVERED, ST_CANCELLED };

/* A new order's column values, as text parameters for the INSERT. */
struct order {
	char id[UUID_STR];
	char user_id[UUID_STR];
	const char *status;
	char amount_cents[24];
	const char *currency;
	const char *country;
};

/* An order a client inserted and may still update or delete. */
struct live_order {
	char id[UUID_STR];
	enum status status;
};

/* A bounded set of live orders; when full, the oldest slots are reused. */
struct pool {
	struct live_order *v;
	size_t n;
	size_t evict;		/* next slot to overwrite when full */
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
uint64_t rng_below(struct rng *r, uint64_t n);
double rng_unit(struct rng *r);
void rng_uuid(struct rng *r, char out[UUID_STR]);

void order_new(struct rng *r, uint64_t seed, struct order *o);
const char *status_name(enum status s);
enum status status_next(struct rng *r, enum status s);
bool status_final(enum status s);

int pool_init(struct pool *p);
void pool_free(struct pool *p);
void pool_add(struct pool *p, const char *id, enum status s);
void pool_remove(struct pool *p, size_t i);

/* client.c: one connection, one thread */

/* State every client shares; the mutex guards all but the atomics. */
struct shared {
	const struct options *opt;
	pthread_mutex_t lock;	/* also keeps log lines whole */
	long long taken;	/* changes in flight or committed, against --count */
	long long committed;
	double next_slot;	/* --rate pacing: when the next change may start */
	double start;		/* monotonic seconds */
	double deadline;	/* 0: no --duration */
	atomic_int stop;	/* a signal arrived, or a client failed */
	atomic_int failed;	/* a client hit an error it cannot retry */
	atomic_int active;	/* client threads still running */
};

struct client_stats {
	long long inserts, updates, deletes, transactions;
};

struct client {
	int index;
	PGconn *conn;
	struct shared *sh;
	struct rng rng;
	struct pool pool;
	struct client_stats stats;
	double finished;	/* monotonic seconds when the thread ended */
	pthread_t thread;
};

int prepare_statements(PGconn *conn);
void client_notice(void *arg, const char *msg);
void *client_main(void *arg);

#endif
