#!/usr/bin/env bash
# kafka-pub and kafka-sub against kcat on one real local broker
# (tests/lib/kafka.bash), in one run, on the same data: N lines (default
# 300,000) of 200 bytes, keyed by "key" (50,000 keys), topics of 3 partitions.
#
#   publish  kafka-pub -k key, against kcat -P -K with the same keys (key, tab,
#            line), twice: kcat as it comes (librdkafka's defaults: acks=all
#            but no idempotence, so up to a million requests in flight) and
#            kcat with kafka-pub's durability (-X enable.idempotence=true, at
#            most 5 requests in flight, and the Java clients' partitioner);
#   consume  kafka-sub -g GROUP -o beginning -e (a group member that commits
#            what it wrote, as kafka-sub is used) against kcat -C -o beginning
#            -e (no group, nothing committed), both reading one topic of N
#            messages to its end; kcat twice too: as it comes, and with
#            kafka-sub's fetch.wait.max.ms=100 (librdkafka: 500, how long a
#            fetch at a partition's end waits, which -e waits for); and
#            kafka-sub --origin, as cdc-sink runs it (each line gets its
#            message's topic, partition and offset): what that costs.
#
# RUNS (3) runs of each, the tools alternating, the fastest kept (on a shared
# machine the fastest is the least disturbed), with the CPU time it used and
# the largest peak RSS of any run.  The librdkafka settings each side uses are
# printed first: kcat's from -X dump, ours from -v.  BENCH_BIN=DIR measures
# the kafka-pub and kafka-sub in DIR instead (another build, for a before and
# after).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/lib/kafka.bash"
[ -z "${BENCH_BIN:-}" ] || PATH="$BENCH_BIN:$PATH"
N=${1:-300000}
RUNS=${RUNS:-3}

work=$(mktemp -d)
trap 'kafka_destroy; rm -rf "$work"' EXIT
# the full JIT: the brokers of the tests start fast, this one must run fast
KAFKA_JAVA_OPTS="-XX:+UseSerialGC" KAFKA_HEAP_OPTS="-Xms512m -Xmx1g" kafka_start >/dev/null
# 200-byte JSON lines, keyed by "key"
awk -v n="$N" 'BEGIN { pad = sprintf("%*s", 160, ""); gsub(/ /, "x", pad)
	for (i = 1; i <= n; i++) printf "{\"key\":{\"id\":%10d},\"n\":%10d,\"pad\":\"%s\"}\n", i % 50000, i, substr(pad, 1, 151) }' >"$work/in"
len=$(head -n 1 "$work/in" | wc -c)
# the same lines as kcat -K reads them: key (as kafka-pub renders it), tab, value
awk '{ match($0, /"id":[ ]*[0-9]+/); printf "{\"id\":%d}\t%s\n", substr($0, RSTART + 5, RLENGTH - 5), $0 }' \
	"$work/in" >"$work/keyed"
for t in pub_kcat pub_kcat_idem pub_ours data; do kafka_topic "$t" 3; done
# the first consumer group creates __consumer_offsets: not what is measured
echo '{}' | kcat -b "$KAFKA_BROKERS" -P -t warm
kafka-sub -t warm -g warm -o beginning -e >/dev/null
# what both consumers read: N messages, once
kafka-pub -t data -k key <"$work/in"

# kmeasure CMD: run CMD (a shell string); SECS (wall), CPU (user + system) and RSS_KB
kmeasure() {
	local out
	out=$(mktemp)
	/usr/bin/time -f '%e %U %S %M' -o "$out" bash -c "$1" || {
		echo "bench: failed: $1" >&2
		rm -f "$out"
		return 1
	}
	read -r SECS user sys RSS_KB <"$out"
	CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
	rm -f "$out"
}

# duel NAME... : RUNS rounds, each running every named command once (its
# command in CMD_name) in turn; keeps each one's fastest run (SECS_name,
# CPU_name) and its largest RSS (RSS_name)
duel() {
	local i name
	for name in "$@"; do
		eval "SECS_$name= CPU_$name= RSS_$name=0"
	done
	for i in $(seq "$RUNS"); do
		for name in "$@"; do
			eval "kmeasure \"\$CMD_$name\""
			if [ -z "$(eval echo "\$SECS_$name")" ] ||
				awk -v a="$SECS" -v b="$(eval echo "\$SECS_$name")" 'BEGIN { exit !(a < b) }'; then
				eval "SECS_$name=$SECS CPU_$name=$CPU"
			fi
			if [ "$RSS_KB" -gt "$(eval echo "\$RSS_$name")" ]; then
				eval "RSS_$name=$RSS_KB"
			fi
		done
	done
}

# krow LABEL NAME: one table row
krow() {
	awk -v l="$1" -v n="$N" -v s="$(eval echo "\$SECS_$2")" -v c="$(eval echo "\$CPU_$2")" \
		-v r="$(eval echo "\$RSS_$2")" 'BEGIN {
		printf "%-40s %8d %7.2f %11.0f %6.2f %8.1f\n", l, n, s, (s > 0 ? n / s : 0), c, r / 1024 }'
}

psettings='request.required.acks|enable.idempotence|max.in.flight.requests.per.connection|partitioner|queue.buffering.max.ms|queue.buffering.max.messages|queue.buffering.max.kbytes|batch.num.messages|batch.size|compression.codec'
csettings='queued.min.messages|queued.max.messages.kbytes|fetch.wait.max.ms|fetch.message.max.bytes|fetch.max.bytes|fetch.min.bytes'
# show P|C: the producer's or the consumer's settings among "key = value" lines
show() {
	local keys=$psettings
	[ "$1" = C ] && keys=$csettings
	grep -Eo "(^|[ :])($keys) ?= ?[^ ,]+" | sed 's/^[ :]*//; s/ = /=/' | grep -v '=inherit$' |
		sort -u | tr '\n' ' '
	echo
}
echo "librdkafka settings (those that shape batching, durability and prefetch):"
printf '  %-22s ' "kcat -P:"
kcat -b "$KAFKA_BROKERS" -P -t x -X dump 2>&1 | show P
printf '  %-22s ' "kcat -P idempotent:"
kcat -b "$KAFKA_BROKERS" -P -t x -X enable.idempotence=true -X partitioner=murmur2_random -X dump 2>&1 |
	show P
printf '  %-22s ' "kafka-pub:"
kafka-pub -v -t warm </dev/null 2>&1 | show P
printf '  %-22s ' "kcat -C:"
kcat -b "$KAFKA_BROKERS" -C -t x -X dump 2>&1 | show C
printf '  %-22s ' "kafka-sub:"
kafka-sub -v -t warm -g warm -o beginning -e 2>&1 >/dev/null | show C
echo

CMD_kcatP="kcat -b $KAFKA_BROKERS -P -t pub_kcat -K '\t' <'$work/keyed'"
CMD_kcatPi="kcat -b $KAFKA_BROKERS -P -t pub_kcat_idem -K '\t' -X enable.idempotence=true -X partitioner=murmur2_random <'$work/keyed'"
CMD_pub="kafka-pub -t pub_ours -k key <'$work/in'"
CMD_kcatC="kcat -b $KAFKA_BROKERS -C -t data -o beginning -e -q >'$work/kcat.out'"
CMD_kcatC1="kcat -b $KAFKA_BROKERS -C -t data -o beginning -e -q -X fetch.wait.max.ms=100 >'$work/kcat.out'"
CMD_sub="kafka-sub -t data -g bench\$RANDOM -o beginning -e >'$work/sub.out'"
CMD_subO="kafka-sub -t data -g bench\$RANDOM -o beginning -e --origin >'$work/subO.out'"

printf "%-40s %8s %7s %11s %6s %8s\n" "Kafka, $N lines of $((len - 1)) bytes" count seconds "per second" CPU-s "RSS MiB"
duel kcatP kcatPi pub
krow "kcat -P -K (acks=all, not idempotent)" kcatP
krow "kcat -P -K, idempotent, murmur2" kcatPi
krow "kafka-pub -k key (idempotent)" pub
duel kcatC kcatC1 sub subO
krow "kcat -C -e (no group)" kcatC
krow "kcat -C -e, fetch.wait.max.ms=100" kcatC1
krow "kafka-sub -e (group, commits)" sub
krow "kafka-sub -e --origin (as cdc-sink)" subO
[ "$(wc -l <"$work/sub.out")" -eq "$N" ] || { echo "bench: kafka-sub read $(wc -l <"$work/sub.out")" >&2; exit 1; }
[ "$(wc -l <"$work/subO.out")" -eq "$N" ] || { echo "bench: kafka-sub --origin read $(wc -l <"$work/subO.out")" >&2; exit 1; }
[ "$(wc -l <"$work/kcat.out")" -eq "$N" ] || { echo "bench: kcat read $(wc -l <"$work/kcat.out")" >&2; exit 1; }
awk -v a="$SECS_kcatP" -v k="$SECS_kcatPi" -v b="$SECS_pub" -v c="$SECS_kcatC" -v d="$SECS_sub" \
	-v e="$SECS_kcatC1" -v r="$RSS_sub" -v o="$SECS_subO" 'BEGIN {
	printf "speed ratio kafka-pub / kcat -P -K (as it comes):          %.2f (target 1.0)\n", a / b
	printf "speed ratio kafka-pub / kcat -P -K (same durability):      %.2f (target 1.0)\n", k / b
	printf "speed ratio kafka-sub / kcat -C (as it comes):             %.2f (target 1.0)\n", c / d
	printf "speed ratio kafka-sub / kcat -C (fetch.wait.max.ms=100):   %.2f\n", e / d
	printf "speed ratio kafka-sub --origin / kafka-sub:                %.2f\n", d / o
	printf "kafka-sub peak RSS:                                        %.1f MiB (target 64)\n", r / 1024 }'
echo "load average: $(cut -d ' ' -f 1-3 /proc/loadavg)"
# the goals of issue 12, each against its strongest honest reference:
# kcat -P with kafka-pub's durability (idempotent, the same partitioner),
# kcat -C the faster of its two settings
echo
kcat_c=$(awk -v a="$SECS_kcatC" -v b="$SECS_kcatC1" 'BEGIN { print (a < b ? a : b) }')
goal "kafka-pub / kcat -P" "$(awk -v k="$SECS_kcatPi" -v b="$SECS_pub" 'BEGIN { printf "%.2fx", k / b }')" \
	"kcat -P -K idem. $(awk -v n="$N" -v s="$SECS_kcatPi" 'BEGIN { printf "%.0f", n / s }') lines/s" ">= 1.0x"
goal "kafka-sub / kcat -C" "$(awk -v k="$kcat_c" -v b="$SECS_sub" 'BEGIN { printf "%.2fx", k / b }')" \
	"kcat -C $(awk -v n="$N" -v s="$kcat_c" 'BEGIN { printf "%.0f", n / s }') msgs/s" ">= 1.0x"
goal "kafka-sub peak RSS" "$(awk -v r="$RSS_sub" 'BEGIN { printf "%.0f MiB", r / 1024 }')" \
	"kcat -C $(awk -v r="$RSS_kcatC" 'BEGIN { printf "%.0f MiB", r / 1024 }')" "<= 64 MiB"
