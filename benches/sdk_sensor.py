"""The comparison for benches/sensor_bench.sh: a slack_sdk Socket Mode client doing the work
`slackctl sensor` does per envelope. It acks the envelope, keeps messages without a subtype,
drops repeats by envelope_id, event_id and channel + ts, looks the user and channel up once
(cached), and prints st2's slack.message trigger as one JSON line.

Usage: sdk_sensor.py aiohttp|websocket_client|builtin   (which slack_sdk client to use;
aiohttp needs the aiohttp package, websocket_client the websocket-client package)
"""
import json, os, sys, threading

adapter = sys.argv[1] if len(sys.argv) > 1 else "aiohttp"
env = os.environ
seen, users, channels = set(), {}, {}

def accept(req):
    """The event to emit, or None when filtered or a repeat."""
    ev = req.payload.get("event") or {}
    if ev.get("type") != "message" or ev.get("subtype"):
        return None
    keys = ("env:" + req.envelope_id, "ev:%s" % req.payload.get("event_id"),
            "msg:%s:%s" % (ev.get("channel"), ev.get("ts")))
    if any(k in seen for k in keys):
        return None
    seen.update(keys)
    return ev

def line(ev, user, channel, event_id, team):
    profile = user.get("profile", {})
    ts = ev.get("ts", "")
    payload = {
        "user": {"id": user.get("id", ev.get("user")), "name": user.get("name"),
                 "first_name": profile.get("first_name", ""), "last_name": profile.get("last_name", ""),
                 "real_name": profile.get("real_name", ""), "is_admin": user.get("is_admin", False),
                 "is_owner": user.get("is_owner", False), "is_bot": user.get("is_bot", False),
                 "email": profile.get("email"), "title": profile.get("title")},
        "channel": {"id": channel.get("id", ev.get("channel")), "name": channel.get("name", ev.get("channel")),
                    "topic": (channel.get("topic") or {}).get("value", ""),
                    "is_group": bool(channel.get("is_private") or channel.get("is_mpim"))},
        "timestamp": int(float(ts or 0)), "timestamp_raw": ts, "text": ev.get("text", ""),
        "channel_type": ev.get("channel_type"), "team": ev.get("team") or team, "event_id": event_id,
    }
    return json.dumps({"trigger": "slack.message", "payload": payload}, ensure_ascii=False) + "\n"

if adapter == "aiohttp":
    import asyncio
    from slack_sdk.web.async_client import AsyncWebClient
    from slack_sdk.socket_mode.aiohttp import SocketModeClient
    from slack_sdk.socket_mode.response import SocketModeResponse

    async def handle(client, req):
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        ev = accept(req)
        if ev is None:
            return
        u, c = ev.get("user"), ev.get("channel")
        # Cache the lookup itself, so events arriving while it runs wait for it, not repeat it.
        if u not in users:
            users[u] = asyncio.ensure_future(client.web_client.users_info(user=u))
        if c not in channels:
            channels[c] = asyncio.ensure_future(client.web_client.conversations_info(channel=c))
        user, channel = (await users[u])["user"], (await channels[c])["channel"]
        sys.stdout.write(line(ev, user, channel, req.payload.get("event_id"), req.payload.get("team_id")))
        sys.stdout.flush()

    async def main():
        c = SocketModeClient(app_token=env["SLACK_APP_TOKEN"],
                             web_client=AsyncWebClient(token=env["SLACK_TOKEN"], base_url=env["SLACK_API_URL"]))
        c.socket_mode_request_listeners.append(handle)
        await c.connect()
        await asyncio.Event().wait()
    asyncio.run(main())
else:
    from slack_sdk import WebClient
    from slack_sdk.socket_mode.response import SocketModeResponse
    if adapter == "websocket_client":
        from slack_sdk.socket_mode.websocket_client import SocketModeClient
    else:
        from slack_sdk.socket_mode import SocketModeClient
    lock = threading.Lock()

    def handle(client, req):
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        with lock:
            ev = accept(req)
            if ev is None:
                return
            u, c = ev.get("user"), ev.get("channel")
            if u not in users:
                users[u] = client.web_client.users_info(user=u)["user"]
            if c not in channels:
                channels[c] = client.web_client.conversations_info(channel=c)["channel"]
            sys.stdout.write(line(ev, users[u], channels[c], req.payload.get("event_id"), req.payload.get("team_id")))
            sys.stdout.flush()

    c = SocketModeClient(app_token=env["SLACK_APP_TOKEN"],
                         web_client=WebClient(token=env["SLACK_TOKEN"], base_url=env["SLACK_API_URL"]))
    c.socket_mode_request_listeners.append(handle)
    c.connect()
    threading.Event().wait()
