/*
 * Retrying with exponential backoff: 100 ms after the first failure, twice
 * as long after each further one, never more than 5 s between attempts.
 */
#ifndef PGCDC_BACKOFF_H
#define PGCDC_BACKOFF_H

struct backoff {
	long delay_ms;		/* the next wait */
	long waited_ms;		/* all the waits so far */
};

#define BACKOFF_INIT { 100, 0 }

/* The next wait in ms, counted in waited_ms; the one after is twice as long, up to 5 s. */
long backoff_next(struct backoff *b);

/*
 * Say "retrying in N ms" (as a warning after why when why is not NULL, else
 * as information), then wait that long; a signal cuts the wait short.
 */
void backoff_sleep(struct backoff *b, const char *why);

#endif
