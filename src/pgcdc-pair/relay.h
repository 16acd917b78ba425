/*
 * systemd's notify protocol for a pair of stages (Type=notify): each stage
 * speaks to a socket of pgcdc-pair's own, and pgcdc-pair speaks for the
 * pair: READY=1 once both stages said it, STATUS= the two stages' lines
 * joined, WATCHDOG=1 only while both keep sending theirs (a hung stage gets
 * the unit restarted), STOPPING=1 once.
 */
#ifndef PGCDC_PAIR_RELAY_H
#define PGCDC_PAIR_RELAY_H

struct relay {
	int fd[2];		/* each stage's socket, -1 when not run by systemd */
	char name[2][64];	/* its abstract name, as NOTIFY_SOCKET gives it ("@...") */
	const char *stage[2];	/* the stages' names, for STATUS= */
	int ready[2], pinged[2], told_ready, told_stopping;
	char status[2][400];
};

/* Open the sockets when $NOTIFY_SOCKET is set; -1 (logged) when they cannot be. */
int relay_open(struct relay *r, const char *up, const char *down);
/* In stage i's child, before exec: its NOTIFY_SOCKET (and WATCHDOG_PID: itself). */
void relay_child(const struct relay *r, int i);
/* Read and relay what stage i sent. */
void relay_read(struct relay *r, int i);
void relay_close(struct relay *r);

#endif
