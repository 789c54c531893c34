#!/usr/bin/env bash
# The s3_wordcount example against a moto S3 server started here: a first run starts fresh,
# a second resumes from the first's checkpoints, a third resumes on a driver and two worker
# processes (each connecting to the bucket itself); a missing bucket is a clear error.
set -euo pipefail

logs=$(mktemp -d)
mkfifo "$logs/moto.fifo"
moto_server -H 127.0.0.1 -p 0 >"$logs/moto.fifo" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true; rm -rf "$logs"' EXIT
# The server says its port in its log: read up to that line (each within 60 s), then keep
# draining the log so the server never blocks on it.
exec 3<"$logs/moto.fifo"
port=""
while IFS= read -r -t 60 line <&3; do
    case "$line" in
    *"Running on http://127.0.0.1:"*)
        port=${line##*:}
        break
        ;;
    esac
done
cat <&3 >"$logs/moto.log" &
if [ -z "$port" ]; then
    echo "moto_server did not say its port" >&2
    exit 1
fi
endpoint="http://127.0.0.1:$port"
curl_put() { python3 -c "import urllib.request as u; u.urlopen(u.Request('$endpoint/$1', method='PUT'))"; }
curl_put dstream-ci
export AWS_ACCESS_KEY_ID=ci AWS_SECRET_ACCESS_KEY=ci
example() { cargo run --release --locked --features s3,kafka -p dstream-examples --example s3_wordcount -- --bucket dstream-ci --endpoint "$endpoint" --seconds 2 "$@"; }
example >"$logs/first.out"
grep -q "starting fresh" "$logs/first.out"
example >"$logs/second.out"
grep -q "resuming from the checkpoints" "$logs/second.out"
example --cluster local:2 >"$logs/third.out"
grep -q "resuming from the checkpoints" "$logs/third.out"
first=$(sed -n 's/^words counted over every run: //p' "$logs/first.out")
third=$(sed -n 's/^words counted over every run: //p' "$logs/third.out")
if [ "$third" -le "$first" ]; then
    echo "the third run's totals ($third) did not go on from the first's ($first)" >&2
    exit 1
fi
if cargo run --release --locked --features s3,kafka -p dstream-examples --example s3_wordcount -- \
    --bucket no-such-bucket --endpoint "$endpoint" --seconds 1 2>"$logs/missing.err"; then
    echo "a missing bucket did not fail the run" >&2
    exit 1
fi
grep -q 'bucket "no-such-bucket" does not exist' "$logs/missing.err"
echo "s3_wordcount: fresh, resumed, resumed on 3 processes ($first -> $third words); missing bucket refused"
