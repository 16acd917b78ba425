#!/usr/bin/env bash
# The JSON scanner (json_scan, what kafka-pub and kafka-sub check each line
# with) against jansson, the reference, on N CDC update events of about 450
# bytes (default 100,000), in memory: validate each and find its "key".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${1:-100000}
RUNS=${RUNS:-5}

make -s -C "$TOP" build/bench/jsonbench >&2
"$TOP/build/bench/jsonbench" "$N" "$RUNS"
