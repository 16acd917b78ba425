/* SIGINT/SIGTERM only set a flag; loops check it and finish cleanly. */
#ifndef PGCDC_SIG_H
#define PGCDC_SIG_H

#include <signal.h>

extern volatile sig_atomic_t sig_stop;	/* the last signal caught */
extern volatile sig_atomic_t sig_count;	/* how many were caught */
extern volatile sig_atomic_t sig_report;	/* SIGUSR1 came: report the figures (stats.h) */
/* SIGHUPs so far: each file that is followed by name (the dead letters, the
 * stats file) is opened again when the count is not the one it last saw */
extern volatile sig_atomic_t sig_reopen;

/*
 * Catch SIGINT and SIGTERM (without SA_RESTART, so blocking calls return
 * EINTR), SIGUSR1 for a report and SIGHUP to reopen files; ignore SIGPIPE.
 */
void sig_install(void);

/* Sleep ms milliseconds, or less when a signal comes. */
void sleep_ms(long ms);

#endif
