/* Waking when an ack file is replaced (inotify on its directory). */
#ifndef PGCDC_ACKWATCH_H
#define PGCDC_ACKWATCH_H

/* A descriptor that becomes readable when path is written or renamed into place; -1 on error. */
int ackwatch_open(const char *path);

/* Consume the pending events so the descriptor blocks again. */
void ackwatch_drain(int fd);

#endif
