/*
 * pgcdc-pair: run two commands joined by a pipe, UPSTREAM | DOWNSTREAM, and
 * supervise them so that neither outlives the other: the halves of the pgcdc
 * pipeline (cdc-source, cdc-sink) run under it.
 *
 * Stopping follows the ack protocol.  SIGTERM or SIGINT goes to the upstream
 * alone: the downstream reads to the end of its input, makes it durable and
 * exits, and the upstream exits once that is acknowledged.  When the
 * downstream ends first, nothing more can be acknowledged, so the upstream is
 * hurried: SIGTERM twice, the second telling it not to wait.  A second signal
 * hurries both; a stage still running --timeout seconds after the first exit
 * or signal is hurried, and killed 5 seconds later.
 *
 * SIGHUP and SIGUSR1 are passed on to both stages.
 *
 * Every signal is blocked and taken synchronously from a signalfd, so there
 * are no handlers and the whole supervision is one plain loop.  Under
 * systemd (Type=notify) it speaks for the pair (relay.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "opt.h"
#include "relay.h"

#define HURRY_GAP_MS	200	/* between the two SIGTERMs of a hurry */
#define KILL_AFTER_MS	5000	/* from the hurry at the timeout to SIGKILL */
#define MAX_TIMEOUT	86400
#define PIPE_SIZE	(1 << 20)	/* the pipe's buffer, F_SETPIPE_SZ */

static const char usage_text[] =
"Usage: pgcdc-pair [-hqVv] [-n NAME] [-t SECONDS] [--] UPSTREAM [ARG]... '|' DOWNSTREAM [ARG]...\n"
"Run UPSTREAM | DOWNSTREAM and supervise both: a signal stops the upstream first,\n"
"neither stage outlives the other or this command, and the exit status is that\n"
"of the stage that failed.\n"
"\n"
"Options:\n"
"  -n, --name=NAME         name in messages (default: pgcdc-pair)\n"
"  -t, --timeout=SECONDS   time the stages have to stop before they are hurried,\n"
"                          then killed 5 s later, 1..86400 (default: 30)\n"
"  -v, --verbose           more diagnostics\n"
"  -q, --quiet             errors only\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n";

enum { UP, DOWN };

struct stage {
	char **argv;
	const char *name;	/* the command's base name, for messages */
	pid_t pid;
	int live;
	int sent_term, sent_kill;	/* what we sent it: no cause of failure */
};

/* What happened: the state of a stop and the failure that decides the exit. */
struct pair {
	struct stage st[2];
	long timeout_ms;
	int stopping;		/* the first signal was passed on */
	int escalated;		/* the timeout has passed once: killing next */
	double timer_at;	/* the stop timer, 0 when not armed */
	double rehurry_at;	/* the second SIGTERM of a hurry, 0 when none */
	int rehurry[2];		/* which stages it goes to */
	char failure[256];	/* the failure reported, "" while there is none */
	int failure_weight;	/* an enum weight: how much it says of the cause */
	int status;		/* the exit status failure implies */
	struct relay relay;	/* systemd's notifications of the stages */
};

static void
parse_options(int argc, char **argv, struct pair *p)
{
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		OPT_GENERAL_LONG
	};
	int c;

	p->timeout_ms = 30000;
	opterr = 0;
	/* "+": options end at the upstream command, whose options are its own */
	while ((c = getopt_long(argc, argv, "+:n:t:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': progname = optarg; break;
		case 't': p->timeout_ms = 1000 * opt_int("--timeout", optarg, 1, MAX_TIMEOUT); break;
		case 'h':
			fputs(usage_text, stdout);
			if (fflush(stdout) != 0 || ferror(stdout))
				die("cannot write the help:");
			exit(EXIT_OK);
		default: opt_general(c, argv, usage_text);
		}
	}
}

static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* Split argv at the first "|" word into the two stages' argument lists. */
static void
split_commands(char **argv, struct pair *p)
{
	char **bar;

	for (bar = argv; *bar != NULL && strcmp(*bar, "|") != 0; bar++)
		;
	if (*bar == NULL)
		usage_error("no \"|\" between the two commands");
	*bar = NULL;
	if (argv[0] == NULL)
		usage_error("no upstream command before \"|\"");
	if (bar[1] == NULL)
		usage_error("no downstream command after \"|\"");
	p->st[UP].argv = argv;
	p->st[DOWN].argv = bar + 1;
	p->st[UP].name = base_name(argv[0]);
	p->st[DOWN].name = base_name(bar[1]);
}

/*
 * In the child: die with the supervisor, even one killed by SIGKILL that can
 * stop nothing: the kernel sends SIGTERM when the parent dies, and each stage
 * then stops as on a signal.  If the parent is already gone (it died before
 * prctl took effect), the stage does not start at all.
 */
static noreturn void
exec_stage(const struct pair *p, int i, pid_t supervisor, int in, int out, const sigset_t *mask)
{
	const struct stage *s = &p->st[i];

	relay_child(&p->relay, i);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != supervisor)
		_exit(EXIT_RUNTIME);
	if ((in != STDIN_FILENO && dup2(in, STDIN_FILENO) < 0) ||
	    (out != STDOUT_FILENO && dup2(out, STDOUT_FILENO) < 0)) {
		log_error("%s: cannot set up the pipe:", s->name);
		_exit(EXIT_RUNTIME);
	}
	/* the stage gets the dispositions and mask the supervisor was given */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigprocmask(SIG_SETMASK, mask, NULL);
	execvp(s->argv[0], s->argv);
	log_error("cannot run \"%s\":", s->argv[0]);
	_exit(errno == ENOENT ? 127 : 126);
}

/*
 * Widen the pipe from Linux's 64 KiB to PIPE_SIZE (fs.pipe-max-size, 1 MiB
 * by default, caps it for users without CAP_SYS_RESOURCE).  A stage blocks
 * on a full pipe and its partner wakes for each 64 KiB: at a few hundred
 * bytes an event, that is a pair of context switches every ~200 events
 * where the stages share two cores.  A reader still gets each line as soon
 * as it is written, so latency is unchanged.  Best effort: a smaller pipe
 * only costs speed.
 */
static void
widen_pipe(int fd)
{
	if (fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE) < 0)
		log_debug("cannot widen the pipe to %d bytes: %s", PIPE_SIZE, strerror(errno));
}

/* Fork both stages; the pipe ends are close-on-exec, dup2'd copies are not. */
static void
start_stages(struct pair *p, const sigset_t *mask)
{
	pid_t self = getpid();
	int fd[2], i;

	if (pipe2(fd, O_CLOEXEC) != 0)
		die("cannot make a pipe:");
	widen_pipe(fd[1]);
	for (i = UP; i <= DOWN; i++) {
		struct stage *s = &p->st[i];

		fflush(NULL);
		if ((s->pid = fork()) < 0)
			die("cannot start %s:", s->name);
		if (s->pid == 0)
			exec_stage(p, i, self, i == UP ? STDIN_FILENO : fd[0],
			    i == UP ? fd[1] : STDOUT_FILENO, mask);
		s->live = 1;
		log_debug("started %s, pid %ld", s->name, (long)s->pid);
	}
	close(fd[0]);
	close(fd[1]);
}

static void
term(struct stage *s)
{
	if (s->live && kill(s->pid, SIGTERM) == 0)
		s->sent_term = 1;
}

/* SIGTERM now to the stages named (up, down), and again HURRY_GAP_MS later. */
static void
hurry(struct pair *p, int up, int down)
{
	if (up)
		term(&p->st[UP]);
	if (down)
		term(&p->st[DOWN]);
	p->rehurry[UP] |= up;
	p->rehurry[DOWN] |= down;
	p->rehurry_at = mono_ms() + HURRY_GAP_MS;
}

static void
arm_timer(struct pair *p, long ms)
{
	p->timer_at = mono_ms() + ms;
}

/* SIGTERM or SIGINT: the first stops the upstream, the next hurry both. */
static void
on_signal(struct pair *p, int signo)
{
	log_debug("got signal %d", signo);
	if (!p->stopping) {
		p->stopping = 1;
		term(&p->st[UP]);
		arm_timer(p, p->timeout_ms);
	} else {
		hurry(p, p->st[UP].live, p->st[DOWN].live);
	}
}

/* The stop timer ran out: hurry what is left, then, the next time, kill it. */
static void
on_timer(struct pair *p)
{
	int i;

	p->timer_at = 0;
	for (i = UP; i <= DOWN; i++) {
		if (!p->st[i].live)
			continue;
		if (!p->escalated)
			log_warning("%s has not stopped after %ld s; stopping it",
			    p->st[i].name, p->timeout_ms / 1000);
		else
			log_warning("%s has not stopped; killing it", p->st[i].name);
	}
	if (!p->escalated) {
		p->escalated = 1;
		hurry(p, p->st[UP].live, p->st[DOWN].live);
		arm_timer(p, KILL_AFTER_MS);
	} else {
		for (i = UP; i <= DOWN; i++)
			if (p->st[i].live && kill(p->st[i].pid, SIGKILL) == 0)
				p->st[i].sent_kill = 1;
	}
}

/*
 * How much a stage's end says about the cause of a failure: a signal from
 * outside (not SIGPIPE) says most; an exit status less, since a stage may
 * fail because its partner died; a signal we sent, or SIGPIPE (a write to
 * the pipe its partner closed), says nothing of its own.
 */
enum weight { FAIL_NONE, FAIL_CONSEQUENCE, FAIL_STATUS, FAIL_CAUSE };

static enum weight
weigh(const struct stage *s, int wstatus)
{
	int sig = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;

	if (wstatus == 0)
		return FAIL_NONE;
	if (sig == 0)
		return FAIL_STATUS;
	if (sig == SIGPIPE || (sig == SIGTERM && s->sent_term) || (sig == SIGKILL && s->sent_kill))
		return FAIL_CONSEQUENCE;
	return FAIL_CAUSE;
}

/*
 * Record how a stage ended: the failure that says most about the cause,
 * the first of equals, decides the message and the exit status, whichever
 * end waitpid reports first.
 */
static void
record_exit(struct pair *p, const struct stage *s, int wstatus)
{
	enum weight w = weigh(s, wstatus);

	if ((int)w <= p->failure_weight)
		return;
	p->failure_weight = (int)w;
	if (WIFSIGNALED(wstatus)) {
		snprintf(p->failure, sizeof p->failure, "%s was killed by signal %d",
		    s->name, WTERMSIG(wstatus));
		p->status = EXIT_RUNTIME;
	} else {
		snprintf(p->failure, sizeof p->failure, "%s exited with status %d",
		    s->name, WEXITSTATUS(wstatus));
		p->status = WEXITSTATUS(wstatus);
	}
}

/*
 * A stage ended.  When the downstream ends, nothing more can be
 * acknowledged: the upstream is hurried.  When the upstream ends, the
 * downstream sees the end of its input and finishes by itself, within the
 * stop timeout.
 */
static void
stage_ended(struct pair *p, int i, int wstatus)
{
	p->st[i].live = 0;
	log_debug("%s ended, wait status %#x", p->st[i].name, (unsigned)wstatus);
	record_exit(p, &p->st[i], wstatus);
	if (p->timer_at == 0 && (p->st[UP].live || p->st[DOWN].live))
		arm_timer(p, p->timeout_ms);
	if (i == DOWN && p->st[UP].live)
		hurry(p, 1, 0);
}

/* Reap every stage that has ended; other children (none expected) are ignored. */
static void
reap(struct pair *p)
{
	pid_t pid;
	int wstatus, i;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0)
		for (i = UP; i <= DOWN; i++)
			if (p->st[i].live && p->st[i].pid == pid)
				stage_ended(p, i, wstatus);
}

/* The time until the next deadline, or NULL when none is set. */
static struct timespec *
time_left(const struct pair *p, struct timespec *ts)
{
	double next = p->timer_at, left;

	if (p->rehurry_at != 0 && (next == 0 || p->rehurry_at < next))
		next = p->rehurry_at;
	if (next == 0)
		return NULL;
	left = next - mono_ms();
	if (left < 0)
		left = 0;
	ts->tv_sec = (time_t)(left / 1000);
	ts->tv_nsec = (long)((left - ts->tv_sec * 1000.0) * 1e6);
	return ts;
}

static void
run_deadlines(struct pair *p)
{
	double now = mono_ms();

	if (p->rehurry_at != 0 && p->rehurry_at <= now) {
		p->rehurry_at = 0;
		if (p->rehurry[UP])
			term(&p->st[UP]);
		if (p->rehurry[DOWN])
			term(&p->st[DOWN]);
		p->rehurry[UP] = p->rehurry[DOWN] = 0;
	}
	if (p->timer_at != 0 && p->timer_at <= now)
		on_timer(p);
}

/*
 * SIGHUP (open the dead-letter files again) and SIGUSR1 (report the
 * figures) are the stages' own: passed on to both, as systemd's reload and
 * logrotate send them to the unit's main process, this one.
 */
static void
pass_on(const struct pair *p, int signo)
{
	int i;

	log_debug("passing signal %d on to the stages", signo);
	for (i = UP; i <= DOWN; i++)
		if (p->st[i].live)
			kill(p->st[i].pid, signo);
}

/*
 * Supervise until both stages have been reaped: the signals come through a
 * signalfd, beside the stages' notifications, and deadlines bound the wait.
 */
static void
supervise(struct pair *p, const sigset_t *set)
{
	struct signalfd_siginfo si;
	struct timespec ts;
	struct pollfd fds[3];
	int sfd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK), i;

	if (sfd < 0)
		die("cannot take signals:");
	fds[0] = (struct pollfd){ sfd, POLLIN, 0 };
	for (i = UP; i <= DOWN; i++)
		fds[1 + i] = (struct pollfd){ p->relay.fd[i], POLLIN, 0 };
	for (;;) {
		reap(p);
		if (!p->st[UP].live && !p->st[DOWN].live)
			break;
		if (ppoll(fds, 3, time_left(p, &ts), NULL) < 0 && errno != EINTR)
			die("cannot wait for a signal:");
		while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
			if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
				on_signal(p, (int)si.ssi_signo);
			else if (si.ssi_signo == SIGHUP || si.ssi_signo == SIGUSR1)
				pass_on(p, (int)si.ssi_signo);
		for (i = UP; i <= DOWN; i++)
			if (fds[1 + i].revents)
				relay_read(&p->relay, i);
		run_deadlines(p);
	}
	close(sfd);
}

int
main(int argc, char **argv)
{
	struct pair p;
	sigset_t set, old;

	log_init(argv[0]);
	memset(&p, 0, sizeof p);
	parse_options(argc, argv, &p);
	split_commands(argv + optind, &p);
	/*
	 * Taken from the signalfd alone, from before the first fork: a signal
	 * that comes while the stages start waits for the loop.  SIGCHLD must
	 * not be ignored, or the kernel would reap the stages for us.
	 */
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	if (relay_open(&p.relay, p.st[UP].name, p.st[DOWN].name) < 0)
		return EXIT_RUNTIME;
	start_stages(&p, &old);
	supervise(&p, &set);
	relay_close(&p.relay);
	if (p.failure[0] != '\0') {
		log_error("%s", p.failure);
		return p.status != 0 ? p.status : EXIT_RUNTIME;
	}
	return EXIT_OK;
}
