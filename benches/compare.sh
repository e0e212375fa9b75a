#!/usr/bin/env bash
# Side-by-side speed of slackctl against Python's slack_sdk (and curl), all talking to the
# built-in emulator on loopback, in one run on one machine. Writes docs/performance.md.
#
#   benches/compare.sh            # full run (10,000 bulk posts, 100,000 sensor events)
#   QUICK=1 benches/compare.sh    # smaller counts, for a smoke test
#
# Needs: cargo, python3 with venv, curl, hyperfine (installed with apt-get when missing and
# running as root). slack_sdk (with aiohttp and websocket-client, for its other Socket Mode
# clients) is installed into a throwaway virtualenv. Timings are medians;
# nothing here is a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=${QUICK:-}
POSTS=${POSTS:-$([ -n "$QUICK" ] && echo 1000 || echo 10000)}
EVENTS=${EVENTS:-$([ -n "$QUICK" ] && echo 10000 || echo 100000)}
RUNS=$([ -n "$QUICK" ] && echo 10 || echo 40)

if ! command -v hyperfine >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }; fi
fi
command -v hyperfine >/dev/null || { echo "hyperfine is required (apt-get install hyperfine)"; exit 2; }

echo "== building the dist binary (fat LTO, one codegen unit)"
cargo build --profile dist --locked --bin slackctl
BIN=$ROOT/target/dist/slackctl

WORK=$(mktemp -d)
trap 'kill $EMU_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
echo "== python virtualenv with slack_sdk"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q slack_sdk aiohttp websocket-client
PY=$WORK/venv/bin/python
SDK_VERSION=$("$PY" -c 'import slack_sdk.version as v; print(v.__version__)')

"$BIN" emulator --listen 127.0.0.1:0 >"$WORK/ready" 2>/dev/null &
EMU_PID=$!
for _ in $(seq 50); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
API=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_url"])' "$WORK/ready")
BASE=${API%/api/}
export SLACK_API_URL=$API SLACK_TOKEN=xoxb-emulator-bot-token HOME=$WORK
CH=C0000001

cat >"$WORK/post.py" <<PY
from slack_sdk import WebClient
WebClient(token="$SLACK_TOKEN", base_url="$API").chat_postMessage(channel="$CH", text="bench")
PY
cat >"$WORK/bulk.py" <<PY
import json, sys
from slack_sdk import WebClient
c = WebClient(token="$SLACK_TOKEN", base_url="$API")
for line in open(sys.argv[1]):
    r = json.loads(line)
    c.chat_postMessage(channel="$CH", text="New sign-up: %s" % r["name"])
PY
python3 -c "
import json
with open('$WORK/records.jsonl','w') as f:
    for i in range($POSTS): f.write(json.dumps({'id': i, 'name': 'user%d' % i}) + '\n')
"

hf() { hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WORK/$1.json" "${@:2}" >/dev/null; }
median_ms() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.2f" % (x["median"]*1000) for x in r))' "$WORK/$1.json"; }
rss_kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

echo "== cold start: action list / action get"
hf list "$BIN action list" "$BIN action get chat.postMessage" "$PY -c 'import slack_sdk'"
read -r LIST GET PYIMPORT < <(median_ms list)

echo "== one chat.postMessage as a whole process"
CURL="curl -s -o /dev/null -X POST -H 'Authorization: Bearer $SLACK_TOKEN' -H 'Content-Type: application/json; charset=utf-8' --data '{\"channel\":\"$CH\",\"text\":\"bench\"}' ${API}chat.postMessage"
hf one "$BIN --no-rate-limit run chat.postMessage channel=$CH text=bench" "$PY $WORK/post.py" "$CURL"
read -r ONE_RS ONE_PY ONE_CURL < <(median_ms one)
RSS_ONE=$(rss_kb "$BIN" --no-rate-limit run chat.postMessage channel=$CH text=bench)
RSS_PY_ONE=$(rss_kb "$PY" "$WORK/post.py")

echo "== $POSTS templated posts"
cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$1/stat"; } # utime+stime, 100 Hz ticks
E0=$(cpu_ms "$EMU_PID")
t0=$(date +%s.%N)
/usr/bin/time -f '%M %U %S' -o "$WORK/bulk.time" "$BIN" --no-rate-limit run chat.postMessage \
  --each "$WORK/records.jsonl" --concurrency 8 channel=$CH 'text=New sign-up: {{ name }}' >/dev/null
t1=$(date +%s.%N)
E1=$(cpu_ms "$EMU_PID")
RSS_PY_BULK=$(rss_kb "$PY" "$WORK/bulk.py" "$WORK/records.jsonl")
t2=$(date +%s.%N)
read -r RSS_BULK BULK_U BULK_S <"$WORK/bulk.time"
BULK_RS=$(python3 -c "print('%.2f' % ($t1-$t0))")
BULK_PY=$(python3 -c "print('%.2f' % ($t2-$t1))")
# CPU per post of each side: which process the two cores spend their time on.
BULK_CPU=$(python3 -c "print('%.0f' % (($BULK_U+$BULK_S)*1e6/$POSTS))")
BULK_EMU_CPU=$(python3 -c "print('%.0f' % (($E1-$E0)*1e3/$POSTS))")

SENSOR_ROWS=""
if [ -x "$ROOT/benches/sensor_bench.sh" ]; then
  echo "== sensor: $EVENTS Socket Mode envelopes"
  SENSOR_ROWS=$(BIN=$BIN PY=$PY WORK=$WORK EVENTS=$EVENTS "$ROOT/benches/sensor_bench.sh")
fi

ratio() { python3 -c "print('%.1f×' % ($1/$2))"; }
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
MEM=$(free -g | awk '/Mem:/ {print $2 " GiB"}')
{
  echo "# Performance"
  echo
  echo "Measured by \`benches/compare.sh\` on $(date -u +%Y-%m-%d): $(nproc) cores ($CPU), $MEM,"
  echo "$(uname -sr). slackctl $("$BIN" --version | cut -d' ' -f2) (dist build) against python"
  echo "slack_sdk $SDK_VERSION ($("$PY" --version)) and curl, all calling the built-in emulator on loopback."
  echo "Medians of $RUNS runs (hyperfine, warm cache); bulk numbers are one run each."
  echo
  echo "| what | slackctl | slack_sdk | curl | slack_sdk ÷ slackctl |"
  echo "|---|---|---|---|---|"
  echo "| \`action list\` (cold start) | $LIST ms | — (\`import slack_sdk\`: $PYIMPORT ms) | — | $(ratio "$PYIMPORT" "$LIST") |"
  echo "| \`action get chat.postMessage\` | $GET ms | — | — | — |"
  echo "| one \`chat.postMessage\`, whole process | $ONE_RS ms | $ONE_PY ms | $ONE_CURL ms | $(ratio "$ONE_PY" "$ONE_RS") (slackctl ÷ curl: $(ratio "$ONE_RS" "$ONE_CURL")) |"
  echo "| $POSTS templated posts (\`--each\`, concurrency 8, pacing off) | $BULK_RS s | $BULK_PY s (sequential loop) | — | $(ratio "$BULK_PY" "$BULK_RS") |"
  echo "| CPU per templated post: slackctl (emulator, same run) | $BULK_CPU µs ($BULK_EMU_CPU µs) | — | — | — |"
  echo "| peak RSS, one post | $((RSS_ONE/1024)) MB | $((RSS_PY_ONE/1024)) MB | — | — |"
  echo "| peak RSS, bulk run | $((RSS_BULK/1024)) MB | $((RSS_PY_BULK/1024)) MB | — | — |"
  [ -n "$SENSOR_ROWS" ] && echo "$SENSOR_ROWS"
  echo
  echo "Reproduce: \`benches/compare.sh\` (or \`QUICK=1 benches/compare.sh\` for smaller counts)."
  echo "Micro-benchmarks of the hot paths: \`cargo bench --bench hot_paths\`."
} >docs/performance.md.new
cat docs/performance.md.new
if [ -f docs/performance.md ] && grep -q '^## Targets' docs/performance.md; then
  # Keep the hand-written analysis below the generated table.
  sed -n '/^## Targets/,$p' docs/performance.md >>docs/performance.md.new
fi
mv docs/performance.md.new docs/performance.md
