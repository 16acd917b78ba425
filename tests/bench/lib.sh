# Shared by the benchmarks: a throwaway PostgreSQL, and a timer that reports
# wall time and peak RSS of one command.
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH="$TOP/bin:$PATH"
. "$TOP/tests/lib/pg.bash"

# measure LABEL CMD...: run CMD (a shell string), set SECS and RSS_KB
measure() {
	local label=$1 out
	shift
	out=$(mktemp)
	/usr/bin/time -f '%e %M' -o "$out" bash -c "$1" || {
		echo "bench: $label failed" >&2
		rm -f "$out"
		return 1
	}
	read -r SECS RSS_KB <"$out"
	rm -f "$out"
}

# best LABEL RUNS CMD: measure CMD RUNS times (it must be repeatable), keep the
# fastest time and the largest RSS: on a shared machine the fastest run is the
# one least disturbed
best() {
	local label=$1 runs=$2 i secs= rss=0
	shift 2
	for i in $(seq "$runs"); do
		measure "$label" "$1" || return 1
		if [ -z "$secs" ] || awk -v a="$SECS" -v b="$secs" 'BEGIN { exit !(a < b) }'; then
			secs=$SECS
		fi
		[ "$RSS_KB" -gt "$rss" ] && rss=$RSS_KB
	done
	SECS=$secs
	RSS_KB=$rss
}

# row LABEL COUNT: one table row from the last measure
row() {
	awk -v l="$1" -v n="$2" -v s="$SECS" -v r="$RSS_KB" 'BEGIN {
		printf "%-40s %10d %8.2f %12.0f %9.1f\n", l, n, s, (s > 0 ? n / s : 0), r / 1024 }'
}

header() {
	printf "%-40s %10s %8s %12s %9s\n" "$1" "count" "seconds" "per second" "RSS MiB"
}

# goal NAME FIGURE REFERENCE TARGET: one of issue 12's goals as this run
# measured it (FIGURE, e.g. "0.93x" or "14.2 ms"), what it was measured
# against and what it should reach; printed now and gathered by tests/bench/run
# into the summary at the end (BENCH_GOALS names the file)
goal() {
	printf '%-34s %-16s %-30s %s\n' "$1" "$2" "$3" "$4"
	[ -z "${BENCH_GOALS:-}" ] || printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$BENCH_GOALS"
}
