#!/usr/bin/env bash
# kafka-pub and kafka-sub against kcat, on the same local broker in one run:
# N lines of 200 bytes (default 1,000,000) published to a fresh topic each,
# then consumed from it to the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/lib/kafka.bash"
N=${1:-1000000}

work=$(mktemp -d)
trap 'kafka_destroy; rm -rf "$work"' EXIT
# the full JIT: the brokers of the tests start fast, this one must run fast
KAFKA_JAVA_OPTS="-XX:+UseSerialGC" KAFKA_HEAP_OPTS="-Xms512m -Xmx1g" kafka_start >/dev/null
# 200-byte JSON lines, keyed by "key"
awk -v n="$N" 'BEGIN { pad = sprintf("%*s", 160, ""); gsub(/ /, "x", pad)
	for (i = 1; i <= n; i++) printf "{\"key\":{\"id\":%10d},\"n\":%10d,\"pad\":\"%s\"}\n", i % 50000, i, substr(pad, 1, 151) }' >"$work/in"
len=$(head -n 1 "$work/in" | wc -c)
# the same lines as kcat -K reads them: key, tab, value
awk '{ match($0, /"id":[ ]*[0-9]+/); printf "{\"id\":%d}\t%s\n", substr($0, RSTART + 5, RLENGTH - 5), $0 }' \
	"$work/in" >"$work/keyed"
for t in pub_kcat pub_kcat_keyed pub_ours; do kafka_topic "$t" 3; done
# the first consumer group creates __consumer_offsets: not what is measured
echo '{}' | kcat -b "$KAFKA_BROKERS" -P -t warm
kafka-sub -t warm -g warm -o beginning -e >/dev/null
# each run publishes to the topic again: the consumers then read RUNS copies
RUNS=${RUNS:-2}

header "Kafka, $N lines of $((len - 1)) bytes"
best kcat-P $RUNS "kcat -b $KAFKA_BROKERS -P -t pub_kcat <'$work/in'"
kcat_pub=$SECS; row "kcat -P, no key (reference)" "$N"
best kcat-PK $RUNS "kcat -b $KAFKA_BROKERS -P -t pub_kcat_keyed -K '\t' -X enable.idempotence=true -X partitioner=murmur2_random <'$work/keyed'"
kcat_keyed=$SECS; row "kcat -P -K, idempotent, murmur2" "$N"
best kafka-pub $RUNS "kafka-pub -t pub_ours -k key <'$work/in'"
pub=$SECS; row "kafka-pub -k key" "$N"
best kcat-C $RUNS "kcat -b $KAFKA_BROKERS -C -t pub_ours -o beginning -e -q >'$work/kcat.out'"
kcat_sub=$SECS; row "kcat -C -e (reference)" "$((N * RUNS))"
best kafka-sub $RUNS "kafka-sub -t pub_ours -g bench\$RANDOM -o beginning -e >'$work/sub.out'"
sub=$SECS; row "kafka-sub -e (group, commits)" "$((N * RUNS))"
[ "$(wc -l <"$work/sub.out")" -eq "$((N * RUNS))" ] || { echo "bench: kafka-sub read $(wc -l <"$work/sub.out")" >&2; exit 1; }
[ "$(wc -l <"$work/kcat.out")" -eq "$((N * RUNS))" ] || { echo "bench: kcat read $(wc -l <"$work/kcat.out")" >&2; exit 1; }
awk -v a="$kcat_pub" -v k="$kcat_keyed" -v b="$pub" -v c="$kcat_sub" -v d="$sub" 'BEGIN {
	printf "speed ratio kafka-pub / kcat -P (no key, not idempotent): %.2f\n", a / b
	printf "speed ratio kafka-pub / kcat -P -K (same guarantees):     %.2f\n", k / b
	printf "speed ratio kafka-sub / kcat -C:                          %.2f\n", c / d }'
