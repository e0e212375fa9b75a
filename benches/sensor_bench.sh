#!/usr/bin/env bash
# Sensor throughput, latency and memory: slackctl sensor vs slack_sdk's SocketModeClient, both
# connected to the emulator over Socket Mode, each acknowledging every envelope and printing
# one line per message. Called by benches/compare.sh (which sets BIN, PY, WORK, EVENTS and a
# running emulator in SLACK_API_URL); prints markdown table rows on stdout.
set -euo pipefail
: "${BIN:?}" "${PY:?}" "${WORK:?}" "${EVENTS:?}" "${SLACK_API_URL:?}"
export SLACK_APP_TOKEN=xapp-emulator-app-token
# A fresh emulator of its own, so no earlier posts are queued for the first socket.
"$BIN" emulator --listen 127.0.0.1:0 >"$WORK/sensor-ready" 2>/dev/null &
SENSOR_EMU=$!
trap 'kill $SENSOR_EMU 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$WORK/sensor-ready" ] && break; sleep 0.1; done
SLACK_API_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_url"])' "$WORK/sensor-ready")
export SLACK_API_URL
BASE=${SLACK_API_URL%/api/}
# The flood queues every envelope at once; give acknowledgements time to come back before the
# emulator would redeliver (a real workspace streams them, it does not queue 100,000 at once).
curl -s -o /dev/null -X POST --data '{"ack_timeout_ms": 120000}' "$BASE/_emulator/sockets/config"

flood() { # $1 = number of envelopes, queued by the emulator straight onto the socket
  curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data "{\"count\": $1, \"channel\": \"C0000001\"}" "$BASE/_emulator/sockets/flood"
}

latency() { # $1 = command; posts 200 single messages 20 ms apart, prints p50 p99 in ms
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
        if text in sent:
            got.append((t - sent[text]) * 1000)
threading.Thread(target=reader, daemon=True).start()
time.sleep(1.5)  # connect
for i in range(200):
    text = "lat %d" % i
    body = json.dumps({"channel": "C0000002", "text": text}).encode()
    req = urllib.request.Request(base + "/_emulator/messages", data=body, headers={"Content-Type": "application/json"})
    sent[text] = time.monotonic()
    urllib.request.urlopen(req).read()
    time.sleep(0.02)
time.sleep(1)
p.terminate()
got.sort()
q = lambda f: got[min(len(got) - 1, int(f * len(got)))] if got else float("nan")
print("%.2f %.2f %d" % (q(0.5), q(0.99), len(got)))
PY
}

cat >"$WORK/sdk_sensor.py" <<PY
import json, sys, threading
from slack_sdk import WebClient
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse
want = int(sys.argv[1]) if len(sys.argv) > 1 else 0
done, seen = threading.Event(), [0]
def handle(client, req):
    client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
    ev = req.payload.get("event", {})
    if ev.get("type") == "message":
        sys.stdout.write(json.dumps({"trigger": "slack.message", "payload": {"text": ev.get("text"), "timestamp_raw": ev.get("ts")}}) + "\n")
        sys.stdout.flush()
        seen[0] += 1
        if want and seen[0] >= want:
            done.set()
c = SocketModeClient(app_token="$SLACK_APP_TOKEN", web_client=WebClient(token="$SLACK_TOKEN", base_url="$SLACK_API_URL"))
c.socket_mode_request_listeners.append(handle)
c.connect()
done.wait() if want else threading.Event().wait()
PY

run_throughput() { # $1 label, rest = command; prints "events/s peak_rss_mb lines"
  local out="$WORK/sensor-$1.out"
  "${@:2}" >"$out" 2>/dev/null &
  local pid=$!
  sleep 1.5
  local t0; t0=$(date +%s.%N)
  flood "$EVENTS"
  local deadline=$(( $(date +%s) + 120 ))
  while kill -0 "$pid" 2>/dev/null && [ "$(wc -l <"$out")" -lt "$EVENTS" ] && [ "$(date +%s)" -lt $deadline ]; do
    sleep 0.02
  done
  local t1; t1=$(date +%s.%N)
  local n; n=$(wc -l <"$out")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  python3 -c "print('%.0f %d %d' % ($n/($t1-$t0), ${rss:-0}/1024, $n))"
}

read -r RS_EPS RS_RSS RS_N < <(run_throughput rs "$BIN" sensor --mode socket --allow-bot-messages)
read -r PY_EPS PY_RSS PY_N < <(run_throughput py "$PY" "$WORK/sdk_sensor.py")
read -r RS_P50 RS_P99 _ < <(latency "$BIN" sensor --mode socket --allow-bot-messages)
read -r PY_P50 PY_P99 _ < <(latency "$PY" "$WORK/sdk_sensor.py")
ratio=$(python3 -c "print('%.1f×' % ($RS_EPS/max($PY_EPS,1)))")
echo "| sensor: $EVENTS Socket Mode envelopes acked and emitted | $RS_EPS events/s ($RS_N lines) | $PY_EPS events/s ($PY_N lines) | — | $ratio |"
echo "| sensor latency, post → line (p50 / p99) | $RS_P50 / $RS_P99 ms | $PY_P50 / $PY_P99 ms | — | — |"
echo "| sensor peak RSS after $EVENTS events | $RS_RSS MB | $PY_RSS MB | — | — |"
