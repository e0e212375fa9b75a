//! What a Slack app sees: events beyond `message`, Block Kit refusals, full answers, the
//! Socket Mode close handshake. Real HTTP and WebSockets on 127.0.0.1, one emulator per test.

use super::{Options, Running, start, tokens};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

struct Emu {
    run: Running,
    http: reqwest::Client,
    events: broadcast::Receiver<Value>,
}

async fn emu() -> Emu {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let run = start(Options::default()).await.expect("emulator starts");
    let events = run.subscribe_messages();
    Emu {
        run,
        http: reqwest::Client::new(),
        events,
    }
}

impl Emu {
    async fn call(&self, method: &str, token: &str, pairs: &[(&str, &str)]) -> Value {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let resp = self
            .http
            .post(format!("{}{method}", self.run.api_url()))
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request");
        serde_json::from_slice(&resp.bytes().await.unwrap()).expect("JSON answer")
    }

    async fn bot(&self, method: &str, pairs: &[(&str, &str)]) -> Value {
        self.call(method, tokens::BOT, pairs).await
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.run.base_url()))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    }

    async fn get_sockets(&self) -> Value {
        let resp = self
            .http
            .get(format!("{}/_emulator/sockets", self.run.base_url()))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    }

    /// The next announced event of type `kind` (others are skipped), within 5 seconds.
    async fn next(&mut self, kind: &str) -> Value {
        let wait = async {
            loop {
                let e = self.events.recv().await.expect("event stream open");
                if e["type"] == kind {
                    return e;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or_else(|_| panic!("no `{kind}` event within 5 s"))
    }

    /// Every event announced so far that nobody has read yet.
    fn drain(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}

fn ok(v: &Value) -> &Value {
    assert_eq!(v["ok"], true, "expected ok: {v}");
    v
}

/// The first `invalid_blocks` error names `pointer` as Slack does.
fn assert_pointer(v: &Value, pointer: &str) {
    let first = v["errors"][0].as_str().unwrap_or_default();
    assert!(
        first.ends_with(&format!("[json-pointer:{pointer}]")),
        "{pointer}: {v}"
    );
}

fn err(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "expected an error: {v}");
    v["error"].as_str().unwrap()
}

#[tokio::test]
async fn a_person_mentioning_the_bot_gives_message_then_app_mention() {
    let mut e = emu().await;
    let r = e
        .control(
            "/_emulator/messages",
            json!({"channel": "general", "user": "U0000003", "text": "<@U0BOT> deploy please"}),
        )
        .await;
    let stored = &ok(&r)["messages"][0];
    let msg = e.next("message").await;
    assert_eq!(msg["ts"], stored["ts"]);
    assert_eq!(msg["client_msg_id"].as_str().unwrap().len(), 36);
    assert_eq!(msg["blocks"][0]["type"], "rich_text");
    assert_eq!(
        msg["blocks"][0]["elements"][0]["elements"][0],
        json!({"type": "user", "user_id": "U0BOT"})
    );
    let mention = e.next("app_mention").await;
    assert_eq!(mention["user"], "U0000003");
    assert_eq!(mention["channel"], "C0000001");
    assert_eq!(mention["ts"], stored["ts"]);
    assert_eq!(mention["event_ts"], stored["ts"]);
    assert_eq!(mention["text"], "<@U0BOT> deploy please");
    assert_eq!(mention["client_msg_id"], msg["client_msg_id"]);
    assert!(mention.get("channel_type").is_none());

    // The bot's own post mentioning itself, and a plain message, give no app_mention.
    ok(&e
        .bot(
            "chat.postMessage",
            &[("channel", "C0000001"), ("text", "I am <@U0BOT>")],
        )
        .await);
    e.control(
        "/_emulator/messages",
        json!({"channel": "general", "text": "no mention here"}),
    )
    .await;
    e.next("message").await;
    e.next("message").await;
    let rest = e.drain();
    assert!(
        rest.iter().all(|x| x["type"] != "app_mention"),
        "unexpected: {rest:?}"
    );
    // Messages injected with a subtype stay as given.
    let r = e
        .control(
            "/_emulator/messages",
            json!({"channel": "general", "subtype": "me_message", "text": "waves"}),
        )
        .await;
    assert!(r["messages"][0].get("client_msg_id").is_none());
}

#[tokio::test]
async fn reactions_are_announced_and_unknown_names_refused() {
    let mut e = emu().await;
    let r = e
        .control(
            "/_emulator/messages",
            json!({"channel": "general", "user": "U0000002", "text": "ship it"}),
        )
        .await;
    let ts = r["messages"][0]["ts"].as_str().unwrap().to_string();
    let args = [
        ("channel", "C0000001"),
        ("name", "thumbsup"),
        ("timestamp", ts.as_str()),
    ];
    ok(&e.bot("reactions.add", &args).await);
    let added = e.next("reaction_added").await;
    assert_eq!(added["user"], "U0BOT");
    assert_eq!(added["reaction"], "thumbsup");
    assert_eq!(added["item_user"], "U0000002");
    assert_eq!(
        added["item"],
        json!({"type": "message", "channel": "C0000001", "ts": ts})
    );
    assert!(added["event_ts"].as_str().unwrap().contains('.'));

    let bogus = [
        ("channel", "C0000001"),
        ("name", "definitely_not_an_emoji"),
        ("timestamp", ts.as_str()),
    ];
    assert_eq!(err(&e.bot("reactions.add", &bogus).await), "invalid_name");

    ok(&e.bot("reactions.remove", &args).await);
    let removed = e.next("reaction_removed").await;
    assert_eq!(removed["reaction"], "thumbsup");
    assert_eq!(removed["item"]["ts"], ts.as_str());
    assert_eq!(err(&e.bot("reactions.remove", &args).await), "no_reaction");
    let m = e
        .http
        .get(format!(
            "{}/_emulator/messages?channel=general",
            e.run.base_url()
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let m: Value = serde_json::from_slice(&m).unwrap();
    let last = m.as_array().unwrap().last().unwrap().clone();
    assert!(last.get("reactions").is_none(), "{last}");
}

#[tokio::test]
async fn joining_and_inviting_announce_member_joined_channel_and_a_join_message() {
    let mut e = emu().await;
    // #announcements (C0000004): the bot is not a member.
    let j = e
        .bot("conversations.join", &[("channel", "C0000004")])
        .await;
    assert_eq!(ok(&j)["channel"]["is_member"], true);
    let joined = e.next("member_joined_channel").await;
    assert_eq!(joined["user"], "U0BOT");
    assert_eq!(joined["channel"], "C0000004");
    assert_eq!(joined["channel_type"], "C");
    assert_eq!(joined["team"], "T0EMULATOR");
    let msg = e.next("message").await;
    assert_eq!(msg["subtype"], "channel_join");
    assert_eq!(msg["user"], "U0BOT");
    assert_eq!(msg["text"], "<@U0BOT> has joined the channel");
    // A second join changes nothing and announces nothing.
    let again = e
        .bot("conversations.join", &[("channel", "C0000004")])
        .await;
    assert_eq!(again["warning"], "already_in_channel");
    assert!(e.drain().is_empty());

    let members = e
        .bot("conversations.members", &[("channel", "C0000004")])
        .await;
    let list: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let outsider = (2..=24)
        .map(|i| format!("U{i:07}"))
        .find(|u| !list.contains(&u.as_str()))
        .expect("someone is not in #backend");
    let inv = e
        .bot(
            "conversations.invite",
            &[("channel", "C0000004"), ("users", &outsider)],
        )
        .await;
    ok(&inv);
    let joined = e.next("member_joined_channel").await;
    assert_eq!(joined["user"], outsider.as_str());
    assert_eq!(joined["inviter"], "U0BOT");
    let again = e
        .bot(
            "conversations.invite",
            &[("channel", "C0000004"), ("users", &outsider)],
        )
        .await;
    assert_eq!(err(&again), "already_in_channel");
}

#[tokio::test]
async fn invalid_blocks_name_the_offending_path() {
    let e = emu().await;
    let v = e
        .bot(
            "chat.postMessage",
            &[
                ("channel", "C0000001"),
                ("blocks", r#"[{"type":"divider"},{"type":"bogus"}]"#),
            ],
        )
        .await;
    assert_eq!(err(&v), "invalid_blocks");
    let line = v["response_metadata"]["messages"][0].as_str().unwrap();
    assert!(line.starts_with("[ERROR] "), "{line}");
    assert!(line.ends_with("[json-pointer:/blocks/1/type]"), "{line}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 1);

    let long = "x".repeat(3001);
    let section = json!([{"type": "section", "text": {"type": "mrkdwn", "text": long}}]);
    let v = e
        .bot(
            "chat.postMessage",
            &[("channel", "C0000001"), ("blocks", &section.to_string())],
        )
        .await;
    assert_eq!(err(&v), "invalid_blocks");
    assert_pointer(&v, "/blocks/0/text/text");
    // Updates and ephemeral messages are checked the same way.
    let posted = e
        .bot(
            "chat.postMessage",
            &[("channel", "C0000001"), ("text", "x")],
        )
        .await;
    let ts = posted["ts"].as_str().unwrap();
    let v = e
        .bot(
            "chat.update",
            &[
                ("channel", "C0000001"),
                ("ts", ts),
                ("blocks", r#"[{"type":"header"}]"#),
            ],
        )
        .await;
    assert_eq!(err(&v), "invalid_blocks");
    assert_pointer(&v, "/blocks/0/text");
    let view = json!({"type": "modal", "title": {"type": "plain_text", "text": "T"},
                      "blocks": [{"type": "section"}]});
    let v = e
        .bot(
            "views.open",
            &[("trigger_id", "1.2.abc"), ("view", &view.to_string())],
        )
        .await;
    assert_eq!(err(&v), "invalid_blocks");
    assert_pointer(&v, "/view/blocks/0/text");
}

#[tokio::test]
async fn full_answers_for_schedule_views_and_bots() {
    let e = emu().await;
    let past = (super::state::now_secs() - 10).to_string();
    let v = e
        .bot(
            "chat.scheduleMessage",
            &[("channel", "C0000001"), ("text", "hi"), ("post_at", &past)],
        )
        .await;
    assert_eq!(err(&v), "time_in_past");
    let at = (super::state::now_secs() + 600).to_string();
    let v = e
        .bot(
            "chat.scheduleMessage",
            &[("channel", "C0000001"), ("text", "later"), ("post_at", &at)],
        )
        .await;
    ok(&v);
    assert!(v["scheduled_message_id"].as_str().unwrap().starts_with('Q'));
    assert_eq!(v["post_at"].to_string(), at);
    assert_eq!(v["channel"], "C0000001");
    assert_eq!(v["message"]["text"], "later");
    assert_eq!(v["message"]["type"], "delayed_message");
    assert_eq!(v["message"]["bot_id"], "B0EMULATOR");

    let view = json!({"type": "modal", "callback_id": "cb",
                      "title": {"type": "plain_text", "text": "Hello"},
                      "blocks": [{"type": "divider"}]});
    let v = e
        .bot(
            "views.open",
            &[("trigger_id", "1.2.abc"), ("view", &view.to_string())],
        )
        .await;
    let id = ok(&v)["view"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with('V'));
    assert_eq!(v["view"]["callback_id"], "cb");
    assert_eq!(v["view"]["blocks"], json!([{"type": "divider"}]));
    assert_eq!(v["view"]["state"], json!({"values": {}}));
    let v = e
        .bot(
            "views.update",
            &[("view_id", &id), ("view", &view.to_string())],
        )
        .await;
    assert_eq!(ok(&v)["view"]["id"], id.as_str());

    let v = e.bot("bots.info", &[("bot", "B0EMULATOR")]).await;
    assert_eq!(ok(&v)["bot"]["user_id"], "U0BOT");
    assert_eq!(
        err(&e.bot("bots.info", &[("bot", "B0NOPE")]).await),
        "bot_not_found"
    );
    let v = e
        .call("users.setPresence", tokens::USER, &[("presence", "busy")])
        .await;
    assert_eq!(err(&v), "invalid_presence");

    let posted = e
        .bot(
            "chat.postMessage",
            &[("channel", "C0000001"), ("text", "x")],
        )
        .await;
    let ts = posted["ts"].as_str().unwrap();
    let pin = [("channel", "C0000001"), ("timestamp", ts)];
    ok(&e.bot("pins.add", &pin).await);
    assert_eq!(err(&e.bot("pins.add", &pin).await), "already_pinned");
}

#[tokio::test]
async fn file_shares_carry_the_subtype_and_their_channels() {
    let mut e = emu().await;
    let v = e
        .bot(
            "files.getUploadURLExternal",
            &[("filename", "a.txt"), ("length", "3")],
        )
        .await;
    let url = ok(&v)["upload_url"].as_str().unwrap().to_string();
    let id = v["file_id"].as_str().unwrap().to_string();
    e.http.post(&url).body("abc").send().await.unwrap();
    let files = json!([{"id": id}]).to_string();
    ok(&e
        .bot(
            "files.completeUploadExternal",
            &[("files", &files), ("channel_id", "C0000001")],
        )
        .await);
    let msg = e.next("message").await;
    assert_eq!(msg["subtype"], "file_share");
    assert_eq!(msg["files"][0]["id"], id.as_str());
    assert_eq!(msg["files"][0]["channels"], json!(["C0000001"]));
    assert_eq!(
        msg["files"][0]["shares"]["public"]["C0000001"][0]["ts"],
        msg["ts"]
    );
}

#[tokio::test]
async fn socket_mode_answers_a_close_frame_with_a_close_frame() {
    let e = emu().await;
    let v = e.call("apps.connections.open", tokens::APP, &[]).await;
    let url = ok(&v)["url"].as_str().unwrap().to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
    ws.send(Message::Close(None)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => continue,
                _ => return false,
            }
        }
    })
    .await
    .expect("an answer within 5 s");
    assert!(answer, "the emulator did not answer the close frame");
}

#[tokio::test]
async fn bots_read_only_joined_channels_and_post_outside_only_with_chat_write_public() {
    let e = emu().await;
    // #announcements (C0000004): the bot is not a member.
    let h = e
        .bot("conversations.history", &[("channel", "C0000004")])
        .await;
    assert_eq!(err(&h), "not_in_channel");
    let v = e
        .call(
            "conversations.history",
            tokens::USER,
            &[("channel", "C0000004")],
        )
        .await;
    ok(&v);
    let post = [("channel", "C0000004"), ("text", "hello")];
    let v = e.call("chat.postMessage", tokens::LIMITED_BOT, &post).await;
    assert_eq!(err(&v), "not_in_channel");
    // The full bot token holds chat:write.public.
    ok(&e.bot("chat.postMessage", &post).await);
    ok(&e
        .bot("conversations.join", &[("channel", "C0000004")])
        .await);
    let h = e
        .bot("conversations.history", &[("channel", "C0000004")])
        .await;
    assert_eq!(ok(&h)["messages"][0]["subtype"], "channel_join");
    ok(&e.call("chat.postMessage", tokens::LIMITED_BOT, &post).await);
}

#[tokio::test]
async fn missing_scope_and_invalid_auth_name_every_accepted_scope() {
    let e = emu().await;
    let all = "channels:history,groups:history,im:history,mpim:history";
    let resp = e
        .http
        .post(format!("{}conversations.history", e.run.api_url()))
        .bearer_auth(tokens::LIMITED_BOT)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("channel=C0000001")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-accepted-oauth-scopes"], all);
    let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(err(&v), "missing_scope");
    assert_eq!(v["needed"], all);
    assert_eq!(v["provided"], "chat:write");

    let resp = e
        .http
        .post(format!("{}users.list", e.run.api_url()))
        .bearer_auth("xoxb-not-a-real-token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    let accepted = resp.headers()["x-accepted-oauth-scopes"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(resp.headers().get("x-oauth-scopes").is_none());
    let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(err(&v), "invalid_auth");
    assert_eq!(accepted, "users:read");

    // A form body that names its charset is read, with Slack's warning.
    let resp = e
        .http
        .post(format!("{}conversations.info", e.run.api_url()))
        .bearer_auth(tokens::BOT)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body("channel=C0000001")
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    ok(&v);
    assert_eq!(v["warning"], "superfluous_charset");
}

#[tokio::test]
async fn ack_deadlines_run_only_once_the_client_reads() {
    let e = emu().await;
    e.control("/_emulator/sockets/config", json!({"ack_timeout_ms": 200}))
        .await;
    let v = e.call("apps.connections.open", tokens::APP, &[]).await;
    let url = ok(&v)["url"].as_str().unwrap().to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    e.control(
        "/_emulator/messages",
        json!({"channel": "general", "text": "while nobody reads"}),
    )
    .await;
    // Several ack deadlines pass while the client reads nothing (as a client busy closing
    // its previous connection does): no redelivery may pile up.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = e.get_sockets().await;
    assert_eq!(status["redelivered"], 0, "{status}");
    assert_eq!(status["unacked"], 1, "{status}");
    // Reading (which answers the emulator's ping) starts the clock; without an ack the
    // envelope then comes again as a retry.
    let mut attempts = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while attempts.len() < 2 {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                if f["type"] == "events_api" {
                    attempts.push(f["retry_attempt"].as_u64().unwrap());
                }
            }
        }
    })
    .await
    .expect("the envelope and its retry within 5 s");
    assert_eq!(attempts, [0, 1]);
}

#[tokio::test]
async fn one_step_files_upload_answers_the_file_and_shares_it() {
    let mut e = emu().await;
    let v = e
        .bot(
            "files.upload",
            &[
                ("channels", "C0000001"),
                ("content", "hello there"),
                ("filename", "hi.txt"),
                ("initial_comment", "a file"),
            ],
        )
        .await;
    let f = &ok(&v)["file"];
    assert!(f["id"].as_str().unwrap().starts_with('F'));
    assert_eq!(f["name"], "hi.txt");
    assert_eq!(f["size"], 11);
    assert_eq!(f["channels"], json!(["C0000001"]));
    let msg = e.next("message").await;
    assert_eq!(msg["subtype"], "file_share");
    assert_eq!(msg["text"], "a file");
    assert_eq!(msg["files"][0]["id"], f["id"]);
    let info = e
        .bot("files.info", &[("file", f["id"].as_str().unwrap())])
        .await;
    assert_eq!(ok(&info)["file"]["title"], "hi.txt");
}

#[tokio::test]
async fn people_react_through_the_control_endpoint() {
    let mut e = emu().await;
    let r = e
        .bot(
            "chat.postMessage",
            &[("channel", "C0000001"), ("text", "vote")],
        )
        .await;
    let ts = ok(&r)["ts"].as_str().unwrap().to_string();
    let v = e
        .control(
            "/_emulator/reactions",
            json!({"channel": "general", "ts": ts, "name": "tada", "user": "U0000004"}),
        )
        .await;
    ok(&v);
    let ev = e.next("reaction_added").await;
    assert_eq!(ev["user"], "U0000004");
    assert_eq!(ev["item_user"], "U0BOT");
    let again = json!({"channel": "general", "ts": ts, "name": "tada", "user": "U0000004"});
    assert_eq!(
        err(&e.control("/_emulator/reactions", again.clone()).await),
        "already_reacted"
    );
    let mut off = again;
    off["remove"] = json!(true);
    ok(&e.control("/_emulator/reactions", off).await);
    assert_eq!(e.next("reaction_removed").await["user"], "U0000004");
    let bogus = json!({"channel": "general", "ts": ts, "name": "nope_nope", "user": "U0000004"});
    assert_eq!(
        err(&e.control("/_emulator/reactions", bogus).await),
        "invalid_name"
    );
}

#[tokio::test]
async fn scheduled_messages_are_listed_deleted_and_posted_on_time() {
    let mut e = emu().await;
    let soon = (super::state::now_secs() + 1).to_string();
    let later = (super::state::now_secs() + 3600).to_string();
    let a = e
        .bot(
            "chat.scheduleMessage",
            &[
                ("channel", "C0000001"),
                ("text", "soon"),
                ("post_at", &soon),
            ],
        )
        .await;
    let b = e
        .bot(
            "chat.scheduleMessage",
            &[
                ("channel", "C0000001"),
                ("text", "later"),
                ("post_at", &later),
            ],
        )
        .await;
    let list = e.bot("chat.scheduledMessages.list", &[]).await;
    let ids: Vec<&Value> = ok(&list)["scheduled_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(
        ids,
        [&a["scheduled_message_id"], &b["scheduled_message_id"]]
    );
    let later_id = b["scheduled_message_id"].as_str().unwrap();
    let del = [("channel", "C0000001"), ("scheduled_message_id", later_id)];
    ok(&e.bot("chat.deleteScheduledMessage", &del).await);
    assert_eq!(
        err(&e.bot("chat.deleteScheduledMessage", &del).await),
        "invalid_scheduled_message_id"
    );
    let posted = e.next("message").await;
    assert_eq!(posted["text"], "soon");
    assert_eq!(posted["bot_id"], "B0EMULATOR");
    let ts: u64 = posted["ts"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ts >= soon.parse::<u64>().unwrap());
    let list = e.bot("chat.scheduledMessages.list", &[]).await;
    assert_eq!(list["scheduled_messages"], json!([]));
}

#[tokio::test]
async fn absurd_socket_timings_are_capped_and_a_connection_still_works() {
    let e = emu().await;
    let huge = json!(u64::MAX);
    let v = e
        .control(
            "/_emulator/sockets/config",
            json!({"ack_timeout_ms": huge, "ping_interval_ms": huge, "disconnect_grace_ms": huge}),
        )
        .await;
    let day = 24 * 60 * 60 * 1000u64;
    assert_eq!(v["status"]["config"]["ping_interval_ms"], day, "{v}");
    assert_eq!(v["status"]["config"]["ack_timeout_ms"], day, "{v}");
    assert_eq!(v["status"]["config"]["disconnect_grace_ms"], day, "{v}");
    // The connection's timers run with the capped values: the hello arrives, nothing panics.
    let v = e.call("apps.connections.open", tokens::APP, &[]).await;
    let url = ok(&v)["url"].as_str().unwrap().to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    let hello = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("hello within 5 s")
        .unwrap()
        .unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
}
