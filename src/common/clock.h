/* The monotonic clock, for intervals and timeouts. */
#ifndef PGCDC_CLOCK_H
#define PGCDC_CLOCK_H

/* Milliseconds on CLOCK_MONOTONIC: only differences mean anything. */
double mono_ms(void);

#endif
