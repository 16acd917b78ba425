# Throwaway PostgreSQL clusters for tests and demos.
#
#   pg_start [NAME] [postgres -c settings...]  initdb + start; exports PGHOST/PGPORT/PGUSER
#   pg_stop / pg_restart / pg_kill             stop (fast), restart, or crash (SIGKILL)
#   pg_destroy                                 stop and remove the cluster
#
# initdb refuses to run as root, so as root the cluster runs as the
# "postgres" user that Debian's package creates.  The cluster listens only on
# a Unix socket in its own directory: no port is shared with anything else.

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}

_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	PGTEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pgcdc-pg.XXXXXX")
	chmod 755 "$PGTEST_DIR"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$PGTEST_DIR"
	_as_pg "$PG_BINDIR/initdb" -D "$PGTEST_DIR/data" -U postgres -A trust \
		-E UTF8 --locale=C.UTF-8 --no-sync >"$PGTEST_DIR/initdb.log" 2>&1 || {
		cat "$PGTEST_DIR/initdb.log" >&2
		return 1
	}
	local opts="-c listen_addresses= -c unix_socket_directories=$PGTEST_DIR -p 5432"
	opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	opts="$opts -c max_connections=100 -c log_min_messages=warning"
	opts="$opts -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10"
	local s
	for s in "$@"; do opts="$opts -c $s"; done
	PGTEST_OPTS=$opts
	export PGHOST=$PGTEST_DIR PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
	export PGTEST_DIR PGTEST_OPTS
	pg_resume
}

pg_resume() {
	_as_pg "$PG_BINDIR/pg_ctl" -D "$PGTEST_DIR/data" -o "$PGTEST_OPTS" \
		-l "$PGTEST_DIR/server.log" -w -t 60 start >/dev/null
}

pg_stop() {
	_as_pg "$PG_BINDIR/pg_ctl" -D "$PGTEST_DIR/data" -m fast -w stop >/dev/null
}

pg_restart() {
	pg_stop && pg_resume
}

pg_kill() {
	local pid
	pid=$(head -n 1 "$PGTEST_DIR/data/postmaster.pid")
	kill -9 "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	# the children notice the postmaster is gone and exit
	sleep 0.5
}

pg_destroy() {
	[ -n "${PGTEST_DIR:-}" ] && [ -d "$PGTEST_DIR" ] || return 0
	_as_pg "$PG_BINDIR/pg_ctl" -D "$PGTEST_DIR/data" -m immediate -w stop >/dev/null 2>&1
	rm -rf "$PGTEST_DIR"
}

# psql that stops at the first error and prints bare values
sql() {
	psql -X -q -v ON_ERROR_STOP=1 -At "$@"
}
