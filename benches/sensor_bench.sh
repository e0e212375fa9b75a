#!/usr/bin/env bash
# Sensor throughput, latency and memory: slackctl sensor vs slack_sdk's Socket Mode clients
# (benches/sdk_sensor.py doing the same work), each connected to a fresh emulator over Socket
# Mode, acknowledging every envelope and printing one trigger line per message. Called by benches/compare.sh (which sets BIN, PY, WORK, EVENTS and a
# running emulator in SLACK_API_URL); prints markdown table rows on stdout.
set -euo pipefail
: "${BIN:?}" "${PY:?}" "${WORK:?}" "${EVENTS:?}" "${SLACK_API_URL:?}"
export SLACK_APP_TOKEN=xapp-emulator-app-token
SENSOR_EMU=""
trap 'kill $SENSOR_EMU 2>/dev/null || true' EXIT
fresh_emulator() { # a new emulator per measurement, so nothing earlier is queued or redelivered
  [ -n "$SENSOR_EMU" ] && { kill "$SENSOR_EMU" 2>/dev/null || true; wait "$SENSOR_EMU" 2>/dev/null || true; }
  rm -f "$WORK/sensor-ready"
  "$BIN" emulator --listen 127.0.0.1:0 >"$WORK/sensor-ready" 2>/dev/null &
  SENSOR_EMU=$!
  for _ in $(seq 50); do [ -s "$WORK/sensor-ready" ] && break; sleep 0.1; done
  SLACK_API_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_url"])' "$WORK/sensor-ready")
  export SLACK_API_URL
  BASE=${SLACK_API_URL%/api/}
  # The flood queues every envelope at once; give acknowledgements time to come back before
  # the emulator would redeliver (a real workspace streams events, it does not queue 100,000).
  curl -s -o /dev/null -X POST --data '{"ack_timeout_ms": 120000}' "$BASE/_emulator/sockets/config"
}
cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$1/stat" 2>/dev/null || echo 0; } # utime+stime, 100 Hz ticks

flood() { # $1 = number of envelopes, queued by the emulator straight onto the socket
  curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data "{\"count\": $1, \"channel\": \"C0000001\"}" "$BASE/_emulator/sockets/flood"
}

latency() { # $1 = command; posts 500 single messages 10 ms apart, prints p50 p99 in ms
  # (the first 5 are warm-up, left out: they include the user and channel lookups)
  python3 - "$BASE" "$@" <<'PY'
import json, subprocess, sys, threading, time, urllib.request
base, cmd = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
sent, got = {}, []
def reader():
    for line in p.stdout:
        t = time.monotonic()
        try:
            text = json.loads(line)["payload"]["text"]
        except Exception:
            continue
        if text in sent and sent[text][0] >= 5:
            got.append((t - sent[text][1]) * 1000)
threading.Thread(target=reader, daemon=True).start()
time.sleep(1.5)  # connect
for i in range(505):
    text = "lat %d" % i
    body = json.dumps({"channel": "C0000002", "text": text}).encode()
    req = urllib.request.Request(base + "/_emulator/messages", data=body, headers={"Content-Type": "application/json"})
    sent[text] = (i, time.monotonic())
    urllib.request.urlopen(req).read()
    time.sleep(0.01)
time.sleep(1)
p.terminate()
got.sort()
q = lambda f: got[min(len(got) - 1, int(f * len(got)))] if got else float("nan")
print("%.2f %.2f %d" % (q(0.5), q(0.99), len(got)))
PY
}

SDK="$(cd "$(dirname "$0")" && pwd)/sdk_sensor.py"

run_throughput() { # $1 label, rest = command
  # prints "events/s peak_rss_mb lines sensor_cpu_us_per_event emulator_cpu_us_per_event"
  fresh_emulator
  local out="$WORK/sensor-$1.out"
  "${@:2}" >"$out" 2>/dev/null &
  local pid=$!
  sleep 1.5
  local c0 e0 t0; c0=$(cpu_ms "$pid"); e0=$(cpu_ms "$SENSOR_EMU"); t0=$(date +%s.%N)
  flood "$EVENTS"
  local deadline=$(( $(date +%s) + 120 ))
  while kill -0 "$pid" 2>/dev/null && [ "$(wc -l <"$out")" -lt "$EVENTS" ] && [ "$(date +%s)" -lt $deadline ]; do
    sleep 0.02
  done
  local t1 c1 e1; t1=$(date +%s.%N); c1=$(cpu_ms "$pid"); e1=$(cpu_ms "$SENSOR_EMU")
  local n; n=$(wc -l <"$out")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  # Callers may run this in a subshell, so stop this measurement's emulator here.
  kill "$SENSOR_EMU" 2>/dev/null || true; wait "$SENSOR_EMU" 2>/dev/null || true; SENSOR_EMU=""
  python3 -c "n=max($n,1); print('%.0f %d %d %.1f %.1f' % ($n/($t1-$t0), ${rss:-0}/1024, $n, ($c1-$c0)*1000/n, ($e1-$e0)*1000/n))"
}

# slackctl finishes in well under a second, so take the median of several runs.
RS_RUNS=${SENSOR_RUNS:-5}
for i in $(seq "$RS_RUNS"); do
  run_throughput rs "$BIN" sensor --mode socket --allow-bot-messages >>"$WORK/sensor-rs.runs"
done
read -r RS_EPS RS_RSS RS_N RS_CPU RS_EMU_CPU < <(sort -n "$WORK/sensor-rs.runs" | sed -n "$(( (RS_RUNS + 1) / 2 ))p")
RS_RANGE=$(sort -n "$WORK/sensor-rs.runs" | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "–" hi}')
# The same with --state: every batch's keys written ahead to the dedupe record and synced
# (one fdatasync per batch) before its acknowledgements go out.
for i in $(seq "$RS_RUNS"); do
  rm -rf "$WORK/sensor-state-$i"
  run_throughput rs-state "$BIN" sensor --mode socket --allow-bot-messages --state "$WORK/sensor-state-$i" >>"$WORK/sensor-rs-state.runs"
done
read -r ST_EPS _ ST_N ST_CPU _ < <(sort -n "$WORK/sensor-rs-state.runs" | sed -n "$(( (RS_RUNS + 1) / 2 ))p")
ST_RANGE=$(sort -n "$WORK/sensor-rs-state.runs" | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "–" hi}')
[ -n "${SENSOR_SLACKCTL_ONLY:-}" ] && {
  echo "| sensor: $EVENTS envelopes (median of $RS_RUNS, range $RS_RANGE) | $RS_EPS events/s ($RS_N lines), $RS_CPU µs CPU/event, $RS_RSS MB |"
  echo "| sensor --state: $EVENTS envelopes (median of $RS_RUNS, range $ST_RANGE) | $ST_EPS events/s ($ST_N lines), $ST_CPU µs CPU/event |"
  exit 0
}
# slack_sdk's fastest client (aiohttp) for the side-by-side rows, then its other two clients.
read -r PY_EPS PY_RSS PY_N PY_CPU _ < <(run_throughput py "$PY" "$SDK" aiohttp)
read -r WS_EPS _ WS_N WS_CPU _ < <(run_throughput py-ws "$PY" "$SDK" websocket_client)
read -r BI_EPS _ BI_N _ _ < <(run_throughput py-builtin "$PY" "$SDK" builtin)
fresh_emulator
read -r RS_P50 RS_P99 _ < <(latency "$BIN" sensor --mode socket --allow-bot-messages)
read -r PY_P50 PY_P99 _ < <(latency "$PY" "$SDK" aiohttp)
ratio() { python3 -c "print('%.1f×' % ($1/max($2,1e-9)))"; }
echo "| sensor: $EVENTS Socket Mode envelopes acked and emitted (slackctl: median of $RS_RUNS, range $RS_RANGE; slack_sdk: aiohttp client) | $RS_EPS events/s ($RS_N lines) | $PY_EPS events/s ($PY_N lines) | — | $(ratio "$RS_EPS" "$PY_EPS") |"
echo "| sensor with \`--state\` (dedupe record written ahead and synced once per batch, before the acks; median of $RS_RUNS, range $ST_RANGE) | $ST_EPS events/s ($ST_N lines; $ST_CPU µs CPU per event) | — | — | — |"
echo "| sensor, slack_sdk's other clients (websocket-client; built-in) | — | $WS_EPS events/s ($WS_N lines); $BI_EPS events/s ($BI_N lines in 120 s) | — | $(ratio "$RS_EPS" "$WS_EPS"); $(ratio "$RS_EPS" "$BI_EPS") |"
echo "| sensor CPU per event (emulator's CPU per event in the same run) | $RS_CPU µs ($RS_EMU_CPU µs) | $PY_CPU µs (websocket-client: $WS_CPU µs) | — | $(ratio "$PY_CPU" "$RS_CPU") |"
echo "| sensor latency, post → line (p50 / p99) | $RS_P50 / $RS_P99 ms | $PY_P50 / $PY_P99 ms | — | — |"
echo "| sensor peak RSS after $EVENTS events | $RS_RSS MB | $PY_RSS MB | — | — |"
