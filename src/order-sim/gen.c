/*
 * Random order data.  Every choice a client makes comes from its own seeded
 * generator, never from the server (no gen_random_uuid()), so a run with one
 * client and a given --seed writes the same rows every time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "order-sim.h"

#define USERS	1000	/* orders come from this many recurring customers */

static const char *const status_names[] = {
	[ST_CREATED] = "created",
	[ST_PAID] = "paid",
	[ST_SHIPPED] = "shipped",
	[ST_DELIVERED] = "delivered",
	[ST_CANCELLED] = "cancelled",
};

static const char *const currencies[] = { "USD", "EUR", "GBP", "JPY", "CHF" };
static const char *const countries[] = {
	"US", "DE", "FR", "GB", "IT", "ES", "NL", "JP", "CH", "CA"
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* SplitMix64's output function: a good 64-bit mix of a counter. */
static uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Seeds that differ by one (seed + client index) give unrelated streams. */
void
rng_seed(struct rng *r, uint64_t seed)
{
	r->state = mix64(seed);
}

uint64_t
rng_next(struct rng *r)
{
	r->state += 0x9e3779b97f4a7c15u;
	return mix64(r->state);
}

/* Uniform in [0, n); the modulo bias is negligible for the small n used here. */
uint64_t
rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

/* Uniform in [0, 1). */
double
rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* A version 4 (random) UUID in its text form. */
void
rng_uuid(struct rng *r, char out[UUID_STR])
{
	uint64_t hi = rng_next(r), lo = rng_next(r);

	hi = (hi & ~UINT64_C(0xf000)) | 0x4000u;			/* version 4 */
	lo = (lo & 0x3fffffffffffffffu) | 0x8000000000000000u;	/* RFC 4122 variant */
	snprintf(out, UUID_STR, "%08x-%04x-%04x-%04x-%012llx",
	    (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xffffu,
	    (unsigned)hi & 0xffffu, (unsigned)(lo >> 48),
	    (unsigned long long)(lo & 0xffffffffffffu));
}

/* A new order in status "created", from one of USERS customers of this seed. */
void
order_new(struct rng *r, uint64_t seed, struct order *o)
{
	struct rng user;

	rng_uuid(r, o->id);
	rng_seed(&user, seed ^ UINT64_C(0x7573657273) ^ (rng_below(r, USERS) << 40));
	rng_uuid(&user, o->user_id);
	o->status = status_names[ST_CREATED];
	snprintf(o->amount_cents, sizeof o->amount_cents, "%llu",
	    (unsigned long long)(100 + rng_below(r, 250000)));
	o->currency = currencies[rng_below(r, NELEM(currencies))];
	o->country = countries[rng_below(r, NELEM(countries))];
}

const char *
status_name(enum status s)
{
	return status_names[s];
}

/* The lifecycle: created -> paid -> shipped -> delivered, sometimes cancelled early. */
enum status
status_next(struct rng *r, enum status s)
{
	double u = rng_unit(r);

	switch (s) {
	case ST_CREATED:
		return u < 0.1 ? ST_CANCELLED : ST_PAID;
	case ST_PAID:
		return u < 0.05 ? ST_CANCELLED : ST_SHIPPED;
	case ST_SHIPPED:
		return ST_DELIVERED;
	default:
		return s;
	}
}

bool
status_final(enum status s)
{
	return s == ST_DELIVERED || s == ST_CANCELLED;
}

int
pool_init(struct pool *p)
{
	p->v = calloc(POOL_SIZE, sizeof *p->v);
	p->n = 0;
	p->evict = 0;
	return p->v ? 0 : -1;
}

void
pool_free(struct pool *p)
{
	free(p->v);
	p->v = NULL;
}

/* Remember an order; when the pool is full, forget one of the oldest. */
void
pool_add(struct pool *p, const char *id, enum status s)
{
	struct live_order *slot;

	if (p->n < POOL_SIZE) {
		slot = &p->v[p->n++];
	} else {
		slot = &p->v[p->evict];
		p->evict = (p->evict + 1) % POOL_SIZE;
	}
	memcpy(slot->id, id, UUID_STR);
	slot->status = s;
}

/* Forget order i; the last one takes its slot. */
void
pool_remove(struct pool *p, size_t i)
{
	p->v[i] = p->v[--p->n];
	if (p->evict >= p->n)
		p->evict = 0;
}
