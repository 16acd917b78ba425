#include <signal.h>
#include <string.h>
#include <time.h>

#include "sig.h"

volatile sig_atomic_t sig_stop;
volatile sig_atomic_t sig_count;
volatile sig_atomic_t sig_report;
volatile sig_atomic_t sig_reopen;

static void
on_stop(int signo)
{
	sig_stop = signo;
	sig_count++;
}

static void
on_flag(int signo)
{
	if (signo == SIGUSR1)
		sig_report = 1;
	else
		sig_reopen++;
}

void
sig_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_flag;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);	/* a signal cuts it short */
}
