/*
 * systemd's service notification protocol (sd_notify(3)), spoken directly:
 * each message is one datagram to the socket $NOTIFY_SOCKET names.  Without
 * NOTIFY_SOCKET (not run by systemd as Type=notify) every call does nothing.
 */
#ifndef PGCDC_NOTIFY_H
#define PGCDC_NOTIFY_H

/* Send "READY=1", "STATUS=...", ... (printf-style); 0 when sent or not asked for, -1 on failure. */
int notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "WATCHDOG=1", when systemd asked for it (WATCHDOG_USEC), at most every half its interval. */
void notify_watchdog(void);

/* The watchdog's interval in ms (0: none): the longest a main loop may wait between calls, halved. */
long notify_watchdog_ms(void);

#endif
