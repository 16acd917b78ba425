/*
 * The window of an upstream stage (pg-cdc-tail, kafka-sub): lines written but
 * not yet acknowledged downstream.  Each leaves a mark, "once line N is
 * durable, so is this position", the position being the caller's payload (a
 * table's position, an LSN, a partition's offset).  When the ack file says N
 * lines are durable, the marks up to N are popped, oldest first, through the
 * caller's callback.  Without an ack file every line written is durable.
 *
 * The ack file is trusted only from this pipeline's downstream.  A count that
 * is malformed, more than the lines written, less than a count read before,
 * or a file that vanished comes from another writer: the window refuses it
 * with an error message, pops nothing from then on, and the stage exits 1
 * with its positions where they were.
 */
#ifndef PGCDC_ACKWIN_H
#define PGCDC_ACKWIN_H

#include <stddef.h>
#include <stdint.h>

struct ackwin;

/* Called with each mark's payload: popped (durable), or cleared by ackwin_free. */
typedef void ackwin_pop_fn(void *ctx, void *payload);

/*
 * A window whose marks carry size bytes of payload, at most max marks (more
 * is a fatal error).  With path, claim the ack file as the upstream stage
 * (ack_claim) and watch it; NULL after an error message.
 */
struct ackwin *ackwin_open(const char *path, size_t size, size_t max);

/* Close the file and lock; clear (if not NULL) is called on each mark left. */
void ackwin_free(struct ackwin *w, ackwin_pop_fn *clear, void *ctx);

/* A descriptor readable when the ack file changes (ackwatch_drain it); -1 without a file. */
int ackwin_fd(const struct ackwin *w);

size_t ackwin_len(const struct ackwin *w);
uint64_t ackwin_acked(const struct ackwin *w);

/* A new mark after line; returns its payload, zeroed, for the caller to fill. */
void *ackwin_push(struct ackwin *w, uint64_t line);

/* The payload of the i-th newest mark (0: the newest) and its line; NULL past the oldest. */
void *ackwin_newer(struct ackwin *w, size_t i, uint64_t *line);

/*
 * Learn how many of the written lines are durable (from the file, or all of
 * them without one) and pop their marks.  0, or -1 once a count was refused.
 */
int ackwin_update(struct ackwin *w, uint64_t written, ackwin_pop_fn *pop, void *ctx);

/*
 * At exit: wait up to timeout_ms, or until a second signal, for every line
 * written to be acknowledged, calling tick (if not NULL) between reads.
 * Stops early once the downstream stage is seen gone (its lock released).
 * 0, or -1 when a count was refused or tick failed.
 */
int ackwin_wait(struct ackwin *w, uint64_t written, double timeout_ms,
    ackwin_pop_fn *pop, void *ctx, int (*tick)(void *ctx));

#endif
