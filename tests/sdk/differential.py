"""Differential test: slackctl sends every Web API call exactly as Slack's Python SDK does.

For every method slack_sdk's WebClient has, representative arguments are generated from its
signature (../shared/data/sdk/slack_sdk-*.json): the required ones, each branch of the
action's one-of groups, and a call with every optional argument (lists of two, a nested
object). Each call is made once with slack_sdk's WebClient and once with `slackctl run
<method> --parameters -`, both against a loopback capture server. The two requests are
decoded (form, query or JSON; JSON text inside form fields parsed) and compared: verb (the
one slack_sdk declares; its sync client posts everything, its async client uses that verb),
body kind, and every field. slackctl must accept every call the SDK makes.

Differences the importer records as deliberate deviations (`slackctl-import
--print-deviations`) are reported but do not fail the run. Prints
"N methods compared, M differences" and exits 1 on any unrecorded difference.

Environment: SLACKCTL_BIN, SDK_SIGNATURES (slack_sdk-*.json), DEVIATIONS (JSON file).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACTIONS = os.path.join(ROOT, "actions")

try:
    import yaml
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
except ImportError as e:  # pragma: no cover - environment check
    if os.environ.get("CI") == "true":
        print("FAIL: %s (.ci/run installs slack_sdk and PyYAML)" % e)
        sys.exit(1)
    print("SKIP: %s" % e)
    sys.exit(0)

os.environ["SKIP_SLACK_SDK_WARNING"] = "1"  # slack_sdk's missing-text warning
warnings.filterwarnings("ignore", category=UserWarning)  # its deprecated-method notices


class Capture(BaseHTTPRequestHandler):
    """Records each request and answers like Slack would to a harmless call."""

    requests = []

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Capture.requests.append({
            "verb": self.command,
            "path": urlsplit(self.path).path,
            "query": urlsplit(self.path).query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        })
        out = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _handle

    def log_message(self, *args):
        pass


def decode(req):
    """(kind, fields) of one captured request; JSON text in form fields is parsed."""
    ctype = req["headers"].get("content-type", "")
    if req["verb"] == "GET":
        kind, pairs = "query", parse_qsl(req["query"], keep_blank_values=True)
    elif ctype.startswith("application/json"):
        return "json", json.loads(req["body"] or b"{}")
    else:
        kind = "form"
        pairs = parse_qsl(req["body"].decode("utf-8"), keep_blank_values=True)
        pairs += parse_qsl(req["query"], keep_blank_values=True)
    fields = {}
    for k, v in pairs:
        if v[:1] in ("[", "{"):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        fields[k] = v
    return kind, fields


TS = "1700000000.000100"


def value_for(name, arg, body, action=None):
    """A representative value slack_sdk accepts for one argument (a known value where the
    catalog lists them: Slack refuses others, so they are not valid calls)."""
    known = ((action or {}).get("parameters", {}).get(name) or {}).get("enum")
    if known:
        return known[0]
    types = arg["types"]
    enc = arg.get("encoding")
    if name in ("ts", "thread_ts", "latest", "oldest", "message_ts") or name.endswith("_ts") \
            and "string" in types and "integer" not in types:
        return TS
    if enc == "comma_join_if_list" or (enc == "json_dumps_if_list"):
        return ["%s_1" % name.upper(), "%s_2" % name.upper()]
    if "array" in types and (enc == "json_dumps" or body == "json"):
        if name in ("blocks", "attachments", "user_auth_blocks", "chunks", "files"):
            return [{"type": "section", "id": "A1"}, {"type": "divider", "id": "A2"}]
        return ["%s_1" % name, "%s_2" % name]
    if "object" in types:
        return {"key": {"nested": ["x", "y"]}, "flag": True}
    if "boolean" in types:
        return True
    if "integer" in types:
        return 2
    if "number" in types:
        return 1.5
    return "v_%s" % name


def load_action(method):
    path = os.path.join(ACTIONS, method + ".yaml")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return yaml.safe_load(fh)


def groups_of(action):
    tags = {t["name"]: t["value"] for t in action.get("tags") or []}
    out = []
    for g in filter(None, tags.get("arg_groups", "").split(";")):
        kind, args = g.split(":", 1)
        out.append((kind, args.split(",")))
    return out


def calls_for(method, sig, action):
    """Argument sets: required + each one-of branch, and one with every optional argument."""
    body = sig["body"][0]
    args = sig["args"]
    required = {n: value_for(n, a, body, action) for n, a in args.items() if a["required"]}
    groups = [(k, [m for m in ms if m in args]) for k, ms in groups_of(action)]
    groups = [(k, ms) for k, ms in groups if ms]
    needed = [ms for k, ms in groups if k in ("one_of", "exactly_one")]
    # One-of alternatives are branches: the full call takes one member of every group.
    exclusive = [ms for k, ms in groups]

    calls = []
    widest = max(needed, key=len) if needed else [None]
    for pick in widest:
        call = dict(required)
        for ms in needed:
            if not any(m in call for m in ms):
                m = pick if pick in ms else ms[0]
                call[m] = value_for(m, args[m], body, action)
        calls.append(call)
    full = dict(calls[0])
    for n, a in args.items():
        if n in full:
            continue
        if any(n in ms and any(m in full for m in ms) for ms in exclusive):
            continue
        full[n] = value_for(n, a, body, action)
    if full != calls[0]:
        calls.append(full)
    return calls


def py_kwargs(sig, call):
    by_wire = {n: a.get("py_name") or n for n, a in sig["args"].items()}
    return {by_wire[k]: v for k, v in call.items()}


def run_sdk(client, sig, call):
    Capture.requests.clear()
    try:
        getattr(client, sig["function"])(**py_kwargs(sig, call))
    except SlackApiError:
        pass
    except Exception as e:  # the SDK refused the call itself: nothing to compare
        return None, "%s: %s" % (type(e).__name__, e)
    if len(Capture.requests) != 1:
        return None, "slack_sdk made %d requests" % len(Capture.requests)
    return Capture.requests[0], None


def run_slackctl(method, call, api_url):
    Capture.requests.clear()
    env = dict(os.environ, SLACK_API_URL=api_url, SLACK_TOKEN="xoxb-differential-test",
               HOME=tempfile.gettempdir())
    p = subprocess.run([os.environ["SLACKCTL_BIN"], "--no-rate-limit", "run", method,
                        "--parameters", "-"], input=json.dumps(call), capture_output=True,
                       text=True, env=env, timeout=30)
    if p.returncode != 0:
        return None, "exit %d: %s" % (p.returncode, " | ".join(p.stderr.strip().splitlines())[:400])
    if len(Capture.requests) != 1:
        return None, "slackctl made %d requests" % len(Capture.requests)
    return Capture.requests[0], None


def deviation(devs, method, arg, kind=None):
    for d in devs:
        if d["kind"] == "st2_required":
            continue  # a policy note, not a difference in any request
        if d["method"] in (method, "*") and d["arg"] in (arg, "*") \
                and (kind is None or d["kind"] == kind):
            return d
    return None


def compare(method, sig, sdk_req, ours_req, devs):
    """Differences between the two requests, each as (arg, text)."""
    diffs = []
    want_verb = sig["http_verbs"][0]
    if ours_req["verb"] != want_verb:
        diffs.append(("*", "verb %s, slack_sdk declares %s" % (ours_req["verb"], want_verb)))
    sk, sf = decode(sdk_req)
    ok, of = decode(ours_req)
    if sk == "query" or sk == "form":
        sk = "form"
    if ok == "query":
        ok = "form"
    if sk != ok:
        diffs.append(("*", "body %s, slack_sdk sends %s" % (ok, sk)))
    sdk_auth = sdk_req["headers"].get("authorization", "")
    ours_auth = ours_req["headers"].get("authorization", "")
    if sdk_auth.startswith("Basic ") and ours_auth != sdk_auth:
        diffs.append(("client_secret", "client credentials: slack_sdk sends HTTP Basic auth"))
    for k in sorted(set(sf) | set(of)):
        if k == "token":
            continue
        if sf.get(k) != of.get(k):
            diffs.append((k, "%s: slack_sdk %r, slackctl %r" % (k, sf.get(k), of.get(k))))
    return diffs


def main():
    with open(os.environ["SDK_SIGNATURES"]) as fh:
        sdk = json.load(fh)["methods"]
    with open(os.environ["DEVIATIONS"]) as fh:
        devs = json.load(fh)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api_url = "http://127.0.0.1:%d/api/" % server.server_address[1]
    client = WebClient(token="xoxb-differential-test", base_url=api_url)

    compared, calls_made, unrecorded, recorded, refused, skipped = 0, 0, [], [], [], []
    for method, sig in sorted(sdk.items()):
        action = load_action(method)
        if action is None:
            refused.append("%s: no action" % method)
            continue
        if action["entry_point"] != "run.py" or "multipart" in sig["body"]:
            skipped.append(method)  # hand-written actions and file uploads are not one call
            continue
        compared += 1
        for call in calls_for(method, sig, action):
            sdk_req, why = run_sdk(client, sig, call)
            if sdk_req is None:
                skipped.append("%s (%s)" % (method, why))
                continue
            ours_req, why = run_slackctl(method, call, api_url)
            calls_made += 1
            if ours_req is None:
                required_devs = [d for d in devs if d["method"] == method
                                 and d["kind"] == "required" and d["arg"] not in call]
                if deviation(devs, method, "*") or required_devs:
                    recorded.append("%s %s" % (method, why))
                else:
                    refused.append("%s %s: %s" % (method, json.dumps(call)[:200], why))
                continue
            for arg, text in compare(method, sig, sdk_req, ours_req, devs):
                d = deviation(devs, method, arg)
                (recorded if d else unrecorded).append("%s: %s" % (method, text))
    server.shutdown()

    for r in refused:
        print("refused: " + r)
    for u in unrecorded:
        print("difference: " + u)
    for r in recorded:
        print("recorded deviation: " + r)
    print("%d calls made; %d methods skipped (hand-written or multipart uploads): %s"
          % (calls_made, len(skipped), ", ".join(skipped[:10])))
    print("%d methods compared, %d differences" % (compared, len(unrecorded) + len(refused)))
    sys.exit(1 if (unrecorded or refused) else 0)


if __name__ == "__main__":
    main()
