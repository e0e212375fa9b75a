#!/usr/bin/env bash
# Sensor throughput, latency and memory: slackctl sensor vs slack_sdk's SocketModeClient, both
# connected to the emulator over Socket Mode, each acknowledging every envelope and printing
# one line per message. Called by benches/compare.sh (which sets BIN, PY, WORK, EVENTS and a
# running emulator in SLACK_API_URL); prints markdown table rows on stdout.
set -euo pipefail
: "${BIN:?}" "${PY:?}" "${WORK:?}" "${EVENTS:?}" "${SLACK_API_URL:?}"
BASE=${SLACK_API_URL%/api/}
export SLACK_APP_TOKEN=xapp-emulator-app-token

flood() { # $1 = number of messages, posted 1,000 per control call
  python3 - "$BASE" "$1" <<'PY'
import json, sys, urllib.request
base, n = sys.argv[1], int(sys.argv[2])
while n > 0:
    k = min(1000, n)
    body = json.dumps({"channel": "C0000001", "count": k, "text": "load"}).encode()
    req = urllib.request.Request(base + "/_emulator/messages", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    n -= k
PY
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

run_throughput() { # $1 label, rest = command; prints "events/s rss_mb"
  local out="$WORK/sensor-$1.out"
  /usr/bin/time -f %M -o "$WORK/rss-$1" "${@:2}" >"$out" 2>/dev/null &
  local pid=$!
  sleep 1.5
  local t0; t0=$(date +%s.%N)
  flood "$EVENTS"
  while kill -0 "$pid" 2>/dev/null; do
    [ "$(wc -l <"$out")" -ge "$EVENTS" ] && break
    sleep 0.05
    if python3 -c "import sys; sys.exit(0 if $(date +%s.%N)-$t0 > 300 else 1)"; then break; fi
  done
  local t1; t1=$(date +%s.%N)
  local n; n=$(wc -l <"$out")
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  local rss; rss=$(tail -1 "$WORK/rss-$1" 2>/dev/null | grep -Eo '^[0-9]+$' || echo 0)
  python3 -c "print('%.0f %d %d' % ($n/($t1-$t0), $rss/1024, $n))"
}

read -r RS_EPS RS_RSS RS_N < <(run_throughput rs "$BIN" sensor --mode socket --allow-bot-messages --max-messages "$EVENTS")
read -r PY_EPS PY_RSS PY_N < <(run_throughput py "$PY" "$WORK/sdk_sensor.py" "$EVENTS")
read -r RS_P50 RS_P99 _ < <(latency "$BIN" sensor --mode socket --allow-bot-messages)
read -r PY_P50 PY_P99 _ < <(latency "$PY" "$WORK/sdk_sensor.py")
ratio=$(python3 -c "print('%.1f×' % ($RS_EPS/max($PY_EPS,1)))")
echo "| sensor: $EVENTS Socket Mode envelopes acked and emitted | $RS_EPS events/s ($RS_N lines) | $PY_EPS events/s ($PY_N lines) | — | $ratio |"
echo "| sensor latency, post → line (p50 / p99) | $RS_P50 / $RS_P99 ms | $PY_P50 / $PY_P99 ms | — | — |"
echo "| sensor peak RSS after $EVENTS events | $RS_RSS MB | $PY_RSS MB | — | — |"
