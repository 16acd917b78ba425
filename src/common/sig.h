/* SIGINT/SIGTERM only set a flag; loops check it and finish cleanly. */
#ifndef PGCDC_SIG_H
#define PGCDC_SIG_H

#include <signal.h>

extern volatile sig_atomic_t sig_stop;	/* the last signal caught */
extern volatile sig_atomic_t sig_count;	/* how many were caught */

/* Catch SIGINT and SIGTERM (without SA_RESTART, so blocking calls return EINTR); ignore SIGPIPE. */
void sig_install(void);

/* Sleep ms milliseconds, or less when a signal comes. */
void sleep_ms(long ms);

#endif
