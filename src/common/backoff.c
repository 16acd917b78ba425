#include "backoff.h"
#include "log.h"
#include "notify.h"
#include "sig.h"

#define BACKOFF_MAX_MS 5000

long
backoff_next(struct backoff *b)
{
	long ms = b->delay_ms;

	b->waited_ms += ms;
	b->delay_ms = ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
	return ms;
}

void
backoff_sleep(struct backoff *b, const char *why)
{
	if (why)
		log_warning("%s; retrying in %ld ms", why, b->delay_ms);
	else
		log_info("retrying in %ld ms", b->delay_ms);
	sleep_ms(backoff_next(b));
	/* waiting out a database or broker that is down is no hang (at most 5 s a wait) */
	notify_watchdog();
}
