"""A small Bolt app that runs unchanged against Slack and against `slackctl emulator`.

It is the README's example (section "Testing your own Slack app against slackctl emulator");
the conformance suite imports and drives this very file, so the example keeps working.

    export SLACK_API_URL=http://127.0.0.1:8089/api/
    export SLACK_BOT_TOKEN=xoxb-emulator-bot-token
    export SLACK_APP_TOKEN=xapp-emulator-app-token
    python example_app.py
"""

import os

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

# The only emulator-specific line: where the Web API lives (Slack's own when unset).
client = WebClient(
    token=os.environ["SLACK_BOT_TOKEN"],
    base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
)
app = App(client=client)


@app.event("app_mention")
def greet(event, say):
    say(text=f"Hi <@{event['user']}>!", thread_ts=event["ts"])


@app.event("message")
def echo(event, say):
    # Plain messages only: joins, edits and file shares arrive as message subtypes.
    if event.get("subtype") is None:
        say(f"You said: {event['text']}")


@app.event("reaction_added")
def thank(event, say):
    say(channel=event["item"]["channel"], text=f"Thanks for the :{event['reaction']}:")


if __name__ == "__main__":
    SocketModeHandler(app, os.environ["SLACK_APP_TOKEN"]).start()
