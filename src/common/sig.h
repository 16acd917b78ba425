/* SIGINT/SIGTERM only set a flag; loops check it and finish cleanly. */
#ifndef PGCDC_SIG_H
#define PGCDC_SIG_H

#include <signal.h>

extern volatile sig_atomic_t sig_stop;	/* the last signal caught */
extern volatile sig_atomic_t sig_count;	/* how many were caught */
extern volatile sig_atomic_t sig_report;	/* SIGUSR1 came: report the figures (stats.h) */
extern volatile sig_atomic_t sig_reopen;	/* SIGHUP came: open the dead-letter file again (dlq.h) */

/*
 * Catch SIGINT and SIGTERM (without SA_RESTART, so blocking calls return
 * EINTR), SIGUSR1 for a report and SIGHUP to reopen files; ignore SIGPIPE.
 */
void sig_install(void);

/* Sleep ms milliseconds, or less when a signal comes. */
void sleep_ms(long ms);

#endif
