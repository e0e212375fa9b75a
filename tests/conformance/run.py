#!/usr/bin/env python3
"""Slack's own Python clients against `slackctl emulator`: the conformance suite.

Starts the emulator (the debug build, or $SLACKCTL_BIN) on a free port and drives it with
`slack_sdk` (WebClient, AsyncWebClient, files_upload_v2, pagination iterators, the rate-limit
retry handler) and `slack_bolt` (the README's example app in Socket Mode, and an app over HTTP
receiving signed Events API deliveries). Every wait is for something observable, bounded by
a deadline. Prints one line per check and how many passed; exits 1 on any failure, 3 when the
client libraries are missing.
"""

import asyncio
import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

try:
    import slack_bolt
    import slack_sdk
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
    from slack_sdk.web.async_client import AsyncWebClient
except ImportError as e:  # pragma: no cover - reported to the Rust wrapper
    print(f"conformance: Slack's Python clients are not installed ({e})")
    sys.exit(3)

BOT = "xoxb-emulator-bot-token"
USER = "xoxp-emulator-user-token"
APP = "xapp-emulator-app-token"
LIMITED = "xoxb-emulator-limited-token"
GENERAL = "C0000001"
DEADLINE = 20.0


class Emulator:
    """`slackctl emulator` in a child process, and its /_emulator controls."""

    def __init__(self):
        binary = os.environ.get("SLACKCTL_BIN") or str(ROOT / "target" / "debug" / "slackctl")
        self.proc = subprocess.Popen(
            [binary, "emulator", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the emulator printed no ready line")
        ready = json.loads(line)
        self.api_url = ready["api_url"]
        self.base_url = ready["base_url"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def control(self, path, body=None, method=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
        try:
            return json.loads(text)
        except ValueError:
            return text

    def messages(self, channel=GENERAL):
        return self.control(f"/_emulator/messages?channel={channel}")

    def inject(self, text, user="U0000003", channel="general"):
        r = self.control(
            "/_emulator/messages", {"channel": channel, "user": user, "text": text}
        )
        return r["messages"][0]

    def client(self, token=BOT, **kw):
        return WebClient(token=token, base_url=self.api_url, **kw)


def wait_for(what, probe, timeout=DEADLINE):
    """Polls `probe` until it returns something truthy; fails after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def replies_with(emu, text, channel=GENERAL):
    """Bot messages (top level and in threads) whose text is exactly `text`."""
    return [
        m
        for m in emu.messages(channel)
        if m.get("bot_id") == "B0EMULATOR" and m.get("text") == text
    ]


class Suite:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, name, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            self.failed.append(name)
            print(f"FAIL {name}: {e!r}")
            traceback.print_exc(limit=3)
        else:
            self.passed += 1
            print(f"ok   {name}")


# ---- WebClient -----------------------------------------------------------------------------


def web_client_checks(s, emu):
    c = emu.client()

    def auth():
        r = c.auth_test()
        assert r["user_id"] == "U0BOT" and r["bot_id"] == "B0EMULATOR", r.data

    def post_and_read():
        r = c.chat_postMessage(channel=GENERAL, text="conformance hello")
        hist = c.conversations_history(channel=GENERAL, limit=1)
        assert hist["messages"][0]["ts"] == r["ts"], hist.data

    def pagination():
        # The iterator hands out one response object, refilled per page: read it as it goes.
        pages, ids = 0, []
        for page in c.users_list(limit=5):
            pages += 1
            ids += [m["id"] for m in page["members"]]
        assert pages == 6, pages
        assert len(ids) == len(set(ids)) == 27, len(ids)

    def conversations_pages():
        walked = [ch["id"] for p in c.conversations_list(limit=7) for ch in p["channels"]]
        whole = [ch["id"] for ch in c.conversations_list(limit=1000)["channels"]]
        assert walked == whole and len(whole) > 7, (len(walked), len(whole))

    def upload_v2():
        r = c.files_upload_v2(
            channel=GENERAL, content="hello file", filename="hello.txt", title="Hello"
        )
        fid = r["file"]["id"]
        last = emu.messages()[-1]
        assert last["subtype"] == "file_share", last
        assert last["files"][0]["id"] == fid and GENERAL in last["files"][0]["channels"], last

    def missing_scope():
        try:
            emu.client(LIMITED).users_list()
        except SlackApiError as e:
            assert e.response["error"] == "missing_scope"
            assert e.response["needed"] == "users:read", e.response.data
            assert e.response["provided"] == "chat:write"
        else:
            raise AssertionError("no SlackApiError")

    def invalid_blocks():
        try:
            c.chat_postMessage(channel=GENERAL, text="x", blocks=[{"type": "bogus"}])
        except SlackApiError as e:
            assert e.response["error"] == "invalid_blocks"
            msgs = e.response["response_metadata"]["messages"]
            assert any("[json-pointer:/blocks/0/type]" in m for m in msgs), msgs
        else:
            raise AssertionError("bogus blocks were accepted")

    def schedule():
        try:
            c.chat_scheduleMessage(channel=GENERAL, text="x", post_at=int(time.time()) - 5)
        except SlackApiError as e:
            assert e.response["error"] == "time_in_past"
        else:
            raise AssertionError("a past post_at was accepted")
        at = int(time.time()) + 300
        r = c.chat_scheduleMessage(channel=GENERAL, text="later", post_at=at)
        assert r["scheduled_message_id"] and r["post_at"] == at, r.data

    def rate_limit_retry():
        emu.control(
            "/_emulator/faults",
            {"path": "/api/chat.postMessage", "status": 429, "retry_after": 1},
        )
        retrying = emu.client(retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
        started = time.monotonic()
        r = retrying.chat_postMessage(channel=GENERAL, text="after a 429")
        assert r["ok"] and time.monotonic() - started >= 0.9
        log = [
            e
            for e in emu.control("/_emulator/requests")
            if e["path"] == "/api/chat.postMessage"
        ]
        assert [e["status"] for e in log[-2:]] == [429, 200], log[-2:]

    def async_client():
        async def go():
            ac = AsyncWebClient(token=BOT, base_url=emu.api_url)
            names = []
            async for page in await ac.users_list(limit=10):
                names += [m["name"] for m in page["members"]]
            r = await ac.chat_postMessage(channel=GENERAL, text="from asyncio")
            return names, r

        names, r = asyncio.run(go())
        assert len(names) == 27 and r["ok"], (len(names), r)

    s.check("WebClient auth.test", auth)
    s.check("WebClient post then read history", post_and_read)
    s.check("WebClient users.list pagination iterator", pagination)
    s.check("WebClient conversations.list iterator equals one big page", conversations_pages)
    s.check("WebClient files_upload_v2 shares a file_share message", upload_v2)
    s.check("WebClient missing_scope names needed and provided", missing_scope)
    s.check("WebClient invalid_blocks with a JSON pointer", invalid_blocks)
    s.check("WebClient chat.scheduleMessage answers and time_in_past", schedule)
    s.check("WebClient RateLimitErrorRetryHandler retries a 429", rate_limit_retry)
    s.check("AsyncWebClient pagination and posting", async_client)


# ---- Bolt in Socket Mode (the README's example) --------------------------------------------


def socket_mode_checks(s, emu):
    os.environ["SLACK_API_URL"] = emu.api_url
    os.environ["SLACK_BOT_TOKEN"] = BOT
    os.environ["SLACK_APP_TOKEN"] = APP
    sys.path.insert(0, str(HERE))
    example = importlib.import_module("example_app")
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(example.app, APP)
    handler.connect()
    user = emu.client(USER)
    sent = {}

    def connected():
        wait_for(
            "a Socket Mode connection",
            lambda: any(
                c["kind"] == "socket_mode" and c["state"] == "open"
                for c in emu.control("/_emulator/sockets")["connections"]
            ),
        )

    def message():
        m = emu.inject("hello app")
        sent["plain"] = m["ts"]
        wait_for("the echo", lambda: replies_with(emu, "You said: hello app"))

    def mention():
        m = emu.inject("<@U0BOT> status?")
        reply = wait_for("the mention reply", lambda: replies_with(emu, "Hi <@U0000003>!"))
        assert reply[0].get("thread_ts") == m["ts"], reply

    def reaction():
        user.reactions_add(channel=GENERAL, timestamp=sent["plain"], name="eyes")
        wait_for("the reaction reply", lambda: replies_with(emu, "Thanks for the :eyes:"))

    def refresh():
        # The message below arrives while the client replaces its connection.
        before = {c["id"] for c in emu.control("/_emulator/sockets")["connections"]}
        emu.control("/_emulator/sockets/disconnect", {"reason": "refresh_requested"})
        emu.inject("during refresh")
        wait_for("the echo during a refresh", lambda: replies_with(emu, "You said: during refresh"))

        def replaced():
            now = {c["id"] for c in emu.control("/_emulator/sockets")["connections"]}
            return now and not (now & before)

        wait_for("the old connection replaced", replaced)
        emu.inject("after refresh")
        wait_for("the echo after a refresh", lambda: replies_with(emu, "You said: after refresh"))
        # Once nothing is left unacknowledged, no redelivery can come any more.
        wait_for("every envelope acknowledged", lambda: emu.control("/_emulator/sockets")["unacked"] == 0)
        counts = {
            t: len(replies_with(emu, t))
            for t in [
                "You said: hello app",
                "You said: <@U0BOT> status?",
                "Hi <@U0000003>!",
                "Thanks for the :eyes:",
                "You said: during refresh",
                "You said: after refresh",
            ]
        }
        assert all(n == 1 for n in counts.values()), (counts, emu.control("/_emulator/sockets"))

    s.check("Bolt Socket Mode connects", connected)
    s.check("Bolt Socket Mode message -> say()", message)
    s.check("Bolt Socket Mode app_mention -> say() in thread", mention)
    s.check("Bolt Socket Mode reaction_added -> say()", reaction)
    s.check("Bolt Socket Mode survives a refresh, nothing handled twice", refresh)
    handler.close()


# ---- Bolt over HTTP (signed Events API deliveries) -----------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_checks(s, emu):
    from slack_bolt import App

    secret = "conformance-signing-secret"
    app = App(client=emu.client(), signing_secret=secret)

    @app.event("message")
    def on_message(event, say):
        if event.get("subtype") is None:
            say(f"http: {event['text']}")

    port = free_port()
    threading.Thread(target=lambda: app.start(port=port, path="/slack/events"), daemon=True).start()
    url = f"http://127.0.0.1:{port}/slack/events"

    def listening():
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for("Bolt's HTTP server", up)

    def wrong_secret_refused():
        r = emu.control("/_emulator/events/subscribe", {"url": url, "signing_secret": "wrong"})
        assert r["ok"] is False and "401" in r.get("detail", ""), r

    def subscribed():
        r = emu.control("/_emulator/events/subscribe", {"url": url, "signing_secret": secret})
        assert r["ok"] is True and r["verified"] is True, r

    def delivery():
        m = emu.inject("over http")
        wait_for("the HTTP app's reply", lambda: replies_with(emu, "http: over http"))
        deliveries = emu.control("/_emulator/events")["deliveries"]
        assert any(d["status"] == 200 for d in deliveries), deliveries
        assert m["ts"]

    s.check("Bolt over HTTP listens", listening)
    s.check("Bolt over HTTP refuses a wrongly signed url_verification", wrong_secret_refused)
    s.check("Bolt over HTTP answers url_verification", subscribed)
    s.check("Bolt over HTTP signed delivery -> say()", delivery)
    emu.control("/_emulator/events/subscribe", method="DELETE")


def main():
    print(f"conformance: slack_sdk {slack_sdk.version.__version__}, slack_bolt {slack_bolt.version.__version__}")
    suite = Suite()
    emu = Emulator()
    try:
        web_client_checks(suite, emu)
        socket_mode_checks(suite, emu)
        http_checks(suite, emu)
    finally:
        emu.stop()
    total = suite.passed + len(suite.failed)
    print(f"conformance: {suite.passed} of {total} client checks passed")
    if suite.failed:
        print("conformance: failed: " + "; ".join(suite.failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
