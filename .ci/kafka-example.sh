#!/usr/bin/env bash
# The kafka_wordcount example against its in-process mock broker: in one process and on a
# driver and two worker processes, each counting the lines it produced; and against a broker
# that is not there, where each batch reports it and the run still ends by itself.
set -euo pipefail

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
example() { cargo run --release --locked --features s3,kafka -p dstream-examples --example kafka_wordcount -- "$@"; }
for cluster in inproc local:2; do
    example --mock --seconds 3 --checkpoint-dir "$logs/checkpoints-${cluster%%:*}" --cluster "$cluster" >"$logs/run.out"
    grep -q "starting fresh" "$logs/run.out"
    words=$(sed -n 's/^words counted: //p' "$logs/run.out")
    if [ -z "$words" ] || [ "$words" -eq 0 ]; then
        echo "kafka_wordcount --cluster $cluster counted no words" >&2
        cat "$logs/run.out" >&2
        exit 1
    fi
done
example --brokers 127.0.0.1:1 --seconds 1 --checkpoint-dir "$logs/checkpoints-down" >"$logs/down.out" 2>"$logs/down.err"
grep -q "1 receiver errors\|[2-9] receiver errors" "$logs/down.out"
echo "kafka_wordcount: counted on 1 and 3 processes; a broker that is down reported"
