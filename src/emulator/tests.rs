//! End-to-end tests of the emulator over real HTTP on 127.0.0.1 (reqwest as the client).
//! Each test starts its own emulator, so they run in parallel and share nothing.

use super::{Options, Running, start, tokens};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};

const FORM: &str = "application/x-www-form-urlencoded";
const JSON_UTF8: &str = "application/json; charset=utf-8";

struct Emu {
    run: Running,
    http: reqwest::Client,
}

async fn emu() -> Emu {
    // reqwest is built with `rustls-no-provider`; plain http needs none, but building a
    // client does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let run = start(Options::default()).await.expect("emulator starts");
    Emu {
        run,
        http: reqwest::Client::new(),
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Emu {
    /// POST a form with the token as a Bearer header; returns status, headers and JSON.
    async fn call(
        &self,
        method: &str,
        token: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> (HeaderMap, Value) {
        let mut req = self
            .http
            .post(format!("{}{method}", self.run.api_url()))
            .header("content-type", FORM)
            .body(form(pairs));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.finish(req).await
    }

    async fn call_json(
        &self,
        method: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> (HeaderMap, Value) {
        let req = self
            .http
            .post(format!("{}{method}", self.run.api_url()))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body.to_string());
        self.finish(req).await
    }

    async fn finish(&self, req: reqwest::RequestBuilder) -> (HeaderMap, Value) {
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap();
        (headers, serde_json::from_slice(&body).expect("JSON answer"))
    }

    async fn bot(&self, method: &str, pairs: &[(&str, &str)]) -> Value {
        self.call(method, Some(tokens::BOT), pairs).await.1
    }

    async fn get_json(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.run.base_url()))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    }

    async fn requests(&self) -> Vec<Value> {
        match self.get_json("/_emulator/requests").await {
            Value::Array(a) => a,
            other => panic!("not an array: {other}"),
        }
    }

    async fn fault(&self, fault: Value) {
        let resp = self
            .http
            .post(format!("{}/_emulator/faults", self.run.base_url()))
            .body(fault.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    async fn webhook(&self, url: &str, content_type: &str, body: &str) -> (u16, String) {
        let resp = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap(),
        )
    }
}

fn err(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "expected an error: {v}");
    v["error"].as_str().unwrap()
}

fn ok(v: &Value) -> &Value {
    assert_eq!(v["ok"], true, "expected ok: {v}");
    v
}

#[tokio::test]
async fn ready_line_names_urls_and_tokens() {
    let e = emu().await;
    let r = e.run.ready_line();
    assert_eq!(r["api_url"], e.run.api_url());
    assert!(e.run.api_url().ends_with("/api/"));
    assert!(r["webhook_url"].as_str().unwrap().starts_with(&format!(
        "{}/services/T0EMULATOR/B0EMULATOR/",
        e.run.base_url()
    )));
    assert_eq!(r["tokens"]["limited_bot"], tokens::LIMITED_BOT);
    assert_eq!(e.run.base_url(), format!("http://{}", e.run.addr()));
    e.run.shutdown().await;
}

#[tokio::test]
async fn auth_errors_follow_slack() {
    let e = emu().await;
    assert_eq!(err(&e.call("auth.test", None, &[]).await.1), "not_authed");
    assert_eq!(
        err(&e.call("auth.test", Some("xoxb-nope"), &[]).await.1),
        "invalid_auth"
    );
    let me = ok(&e.bot("auth.test", &[]).await).clone();
    assert_eq!(me["user_id"], "U0BOT");
    assert_eq!(me["bot_id"], "B0EMULATOR");
    assert_eq!(me["team_id"], "T0EMULATOR");
    // A token in a form body is accepted too.
    let (_, v) = e.call("auth.test", None, &[("token", tokens::USER)]).await;
    assert_eq!(ok(&v)["user_id"], "U0000001");
    // api.test needs no token.
    let v = e.call("api.test", None, &[("foo", "bar")]).await.1;
    assert_eq!(ok(&v)["args"]["foo"], "bar");
    let v = e.call("api.test", None, &[("error", "my_error")]).await.1;
    assert_eq!(err(&v), "my_error");

    // Token kinds.
    let kind = |m: &'static str, t: &'static str| {
        let e = &e;
        async move { e.call(m, Some(t), &[]).await.1 }
    };
    assert_eq!(
        err(&kind("auth.test", tokens::APP).await),
        "not_allowed_token_type"
    );
    assert_eq!(
        err(&kind("apps.connections.open", tokens::BOT).await),
        "not_allowed_token_type"
    );
    let v = kind("apps.connections.open", tokens::APP).await;
    assert!(
        ok(&v)["url"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
    assert_eq!(
        err(&kind("rtm.connect", tokens::BOT).await),
        "not_allowed_token_type"
    );
    ok(&kind("rtm.connect", tokens::USER).await);
    // users.admin.invite is user-token-only in the catalog.
    let v = e
        .bot("users.admin.invite", &[("email", "new@example.com")])
        .await;
    assert_eq!(err(&v), "not_allowed_token_type");
    assert_eq!(err(&e.bot("chat.postMesage", &[]).await), "unknown_method");
    assert_eq!(err(&e.bot("channels.list", &[]).await), "method_deprecated");
    // A catalogued method without a handler still answers like Slack.
    let v = e.bot("bookmarks.list", &[("channel_id", "C0000001")]).await;
    ok(&v);
    e.run.shutdown().await;
}

#[tokio::test]
async fn token_in_query_string_is_refused_and_logged() {
    let e = emu().await;
    let url = format!("{}auth.test?token={}", e.run.api_url(), tokens::BOT);
    let (_, v) = e.finish(e.http.get(url)).await;
    assert_eq!(err(&v), "invalid_auth");
    let log = e.requests().await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["auth"], "query");
    assert_eq!(log[0]["token_kind"], "bot");
    assert_eq!(log[0]["rejected"], "token in query string");
    assert_eq!(log[0]["args"]["token"], "[redacted]");
    e.run.shutdown().await;
}

#[tokio::test]
async fn limited_bot_gets_missing_scope_with_needed_and_provided() {
    let e = emu().await;
    let (h, v) = e.call("users.list", Some(tokens::LIMITED_BOT), &[]).await;
    assert_eq!(err(&v), "missing_scope");
    assert_eq!(v["needed"], "users:read");
    assert_eq!(v["provided"], "chat:write");
    assert_eq!(h["x-oauth-scopes"], "chat:write");
    let (_, v) = e
        .call(
            "chat.postMessage",
            Some(tokens::LIMITED_BOT),
            &[("channel", "C0000001"), ("text", "hi")],
        )
        .await;
    ok(&v);
    let (h, _) = e.call("users.list", Some(tokens::BOT), &[]).await;
    let scopes = h["x-oauth-scopes"].to_str().unwrap();
    assert!(scopes.contains("users:read") && scopes.contains("chat:write"));
    e.run.shutdown().await;
}

#[tokio::test]
async fn users_list_paginates_over_every_user() {
    let e = emu().await;
    let mut cursor = String::new();
    let (mut pages, mut seen) = (0, Vec::new());
    loop {
        let v = e.bot("users.list", &[("cursor", &cursor)]).await;
        pages += 1;
        for m in ok(&v)["members"].as_array().unwrap() {
            seen.push(m["id"].as_str().unwrap().to_string());
        }
        cursor = v["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    // 25 people, the bot user and Slackbot; page size 10.
    assert_eq!(seen.len(), Options::default().users + 2);
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 27);
    assert!(seen.contains(&"USLACKBOT".to_string()));

    let v = e.bot("users.list", &[("cursor", "bm9wZTox")]).await;
    assert_eq!(err(&v), "invalid_cursor");
    let v = e.bot("users.list", &[("limit", "100")]).await;
    assert_eq!(v["members"].as_array().unwrap().len(), 27);
    assert_eq!(v["response_metadata"]["next_cursor"], "");

    // Several pages of public channels, re-sending the filters each time.
    let mut cursor = String::new();
    let mut names = Vec::new();
    loop {
        let v = e
            .bot(
                "conversations.list",
                &[("exclude_archived", "true"), ("cursor", &cursor)],
            )
            .await;
        for c in ok(&v)["channels"].as_array().unwrap() {
            assert_eq!(c["is_private"], false);
            assert_eq!(c["is_archived"], false);
            names.push(c["name"].as_str().unwrap().to_string());
        }
        cursor = v["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(names.len(), 24);
    assert!(names.contains(&"general".to_string()));
    let v = e
        .bot(
            "conversations.list",
            &[("types", "private_channel,im,mpim"), ("limit", "100")],
        )
        .await;
    let kinds: Vec<_> = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().chars().next().unwrap())
        .collect();
    assert!(kinds.contains(&'D') && kinds.contains(&'C'), "{v}");
    let v = e.bot("users.conversations", &[("limit", "100")]).await;
    assert!(ok(&v)["channels"].as_array().unwrap().len() >= 5);
    e.run.shutdown().await;
}

#[tokio::test]
async fn posted_message_shows_up_in_history_with_its_exact_ts() {
    let e = emu().await;
    let mut events = e.run.subscribe_messages();
    let v = e
        .bot(
            "chat.postMessage",
            &[("channel", "#general"), ("text", "deploy finished")],
        )
        .await;
    let ts = ok(&v)["ts"].as_str().unwrap().to_string();
    assert_eq!(v["channel"], "C0000001");
    assert_eq!(v["message"]["text"], "deploy finished");
    let (secs, frac) = ts.split_once('.').unwrap();
    assert_eq!((secs.len(), frac.len()), (10, 6));

    let event = events.recv().await.unwrap();
    assert_eq!(event["ts"], ts.as_str());
    assert_eq!(event["channel"], "C0000001");
    assert_eq!(event["user"], "U0BOT");
    assert_eq!(event["text"], "deploy finished");

    let h = e
        .bot(
            "conversations.history",
            &[("channel", "C0000001"), ("limit", "1")],
        )
        .await;
    assert_eq!(ok(&h)["messages"][0]["ts"], ts.as_str());
    assert_eq!(h["has_more"], true);

    // Two posts in a row never share a ts.
    let v2 = e
        .bot(
            "chat.postMessage",
            &[("channel", "C0000001"), ("text", "again")],
        )
        .await;
    assert_ne!(v2["ts"], ts.as_str());
    assert!(v2["ts"].as_str().unwrap() > ts.as_str());

    // A reply goes to the thread, not the channel history.
    let r = e
        .bot(
            "chat.postMessage",
            &[
                ("channel", "C0000001"),
                ("text", "reply"),
                ("thread_ts", &ts),
            ],
        )
        .await;
    ok(&r);
    let replies = e
        .bot(
            "conversations.replies",
            &[("channel", "C0000001"), ("ts", &ts)],
        )
        .await;
    assert_eq!(ok(&replies)["messages"].as_array().unwrap().len(), 2);
    assert_eq!(replies["messages"][0]["reply_count"], 1);

    // ts values are compared as exact strings: a float round-trip loses the match.
    let trimmed = ts.trim_end_matches('0');
    if trimmed != ts {
        let d = e
            .bot("chat.delete", &[("channel", "C0000001"), ("ts", trimmed)])
            .await;
        assert_eq!(err(&d), "message_not_found");
    }
    let u = e
        .bot(
            "chat.update",
            &[("channel", "C0000001"), ("ts", &ts), ("text", "edited")],
        )
        .await;
    assert_eq!(ok(&u)["message"]["text"], "edited");
    ok(&e
        .bot("chat.delete", &[("channel", "C0000001"), ("ts", &ts)])
        .await);

    // Pages of history, newest first, with latest/oldest windows.
    let all = e
        .bot(
            "conversations.history",
            &[("channel", "C0000001"), ("limit", "100")],
        )
        .await;
    let total = all["messages"].as_array().unwrap().len();
    let mut cursor = String::new();
    let mut count = 0;
    loop {
        let p = e
            .bot(
                "conversations.history",
                &[("channel", "C0000001"), ("limit", "1"), ("cursor", &cursor)],
            )
            .await;
        count += ok(&p)["messages"].as_array().unwrap().len();
        cursor = p["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(count, total);
    let w = e
        .bot(
            "conversations.history",
            &[
                ("channel", "C0000001"),
                ("latest", "1700003600.000200"),
                ("inclusive", "1"),
            ],
        )
        .await;
    assert_eq!(w["messages"][0]["ts"], "1700003600.000200");
    let v = e
        .bot(
            "chat.postMessage",
            &[("channel", "C9999999"), ("text", "x")],
        )
        .await;
    assert_eq!(err(&v), "channel_not_found");
    let v = e.bot("chat.postMessage", &[("channel", "C0000001")]).await;
    assert_eq!(err(&v), "no_text");
    // A user id opens the DM.
    let v = e
        .bot(
            "chat.postMessage",
            &[("channel", "U0000002"), ("text", "psst")],
        )
        .await;
    assert!(ok(&v)["channel"].as_str().unwrap().starts_with('D'));

    let stored = e.get_json("/_emulator/messages?channel=general").await;
    assert!(
        stored
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == "again")
    );
    e.run.shutdown().await;
}

#[tokio::test]
async fn webhook_posts_to_general_and_answers_plain_text() {
    let e = emu().await;
    let url = e.run.webhook_url();
    let (status, body) = e
        .webhook(&url, "application/json", r#"{"text":"from the hook"}"#)
        .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let form_body = form(&[("payload", r#"{"text":"form hook"}"#)]);
    assert_eq!(e.webhook(&url, FORM, &form_body).await, (200, "ok".into()));

    let h = e
        .bot(
            "conversations.history",
            &[("channel", "C0000001"), ("limit", "2")],
        )
        .await;
    let m = &h["messages"][1];
    assert_eq!(m["text"], "from the hook");
    assert_eq!(m["bot_id"], "B0EMULATOR");
    assert!(m.get("user").is_none(), "{m}");

    assert_eq!(
        e.webhook(&url, "application/json", r#"{"username":"x"}"#)
            .await,
        (400, "no_text".into())
    );
    assert_eq!(
        e.webhook(&url, "application/json", "{not json").await,
        (400, "invalid_payload".into())
    );
    let wrong = format!("{}/services/T0EMULATOR/B0EMULATOR/wrong", e.run.base_url());
    assert_eq!(
        e.webhook(&wrong, "application/json", r#"{"text":"x"}"#)
            .await,
        (404, "no_service".into())
    );
    let path = url.trim_start_matches(&e.run.base_url()).to_string();
    e.fault(json!({"path": path, "error": "channel_is_archived"}))
        .await;
    assert_eq!(
        e.webhook(&url, "application/json", r#"{"text":"x"}"#).await,
        (410, "channel_is_archived".into())
    );
    e.run.shutdown().await;
}

#[tokio::test]
async fn queued_faults_answer_in_order() {
    let e = emu().await;
    e.fault(json!([
        {"path": "/api/chat.postMessage", "status": 429, "retry_after": 7, "times": 2},
        {"path": "*", "status": 503, "body": "<html>down</html>"},
    ]))
    .await;
    let post = || {
        e.http
            .post(format!("{}chat.postMessage", e.run.api_url()))
            .bearer_auth(tokens::BOT)
            .header("content-type", FORM)
            .body(form(&[("channel", "C0000001"), ("text", "x")]))
            .send()
    };
    for _ in 0..2 {
        let r = post().await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[RETRY_AFTER], "7");
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v, json!({"ok": false, "error": "ratelimited"}));
    }
    let r = post().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = post().await.unwrap();
    assert_eq!(r.status(), 200);

    e.fault(json!({"path": "/api/auth.test", "error": "internal_error"}))
        .await;
    assert_eq!(err(&e.bot("auth.test", &[]).await), "internal_error");
    ok(&e.bot("auth.test", &[]).await);
    let log = e.requests().await;
    assert_eq!(log.iter().filter(|r| r["fault"] == true).count(), 4);
    assert_eq!(log[0]["status"], 429);
    e.run.shutdown().await;
}

#[tokio::test]
async fn arguments_are_checked_strictly() {
    let e = emu().await;
    let v = e
        .bot("conversations.list", &[("exclude_archived", "True")])
        .await;
    assert_eq!(err(&v), "invalid_arguments");
    let log = e.requests().await;
    let reason = log[0]["rejected"].as_str().unwrap();
    assert!(
        reason.contains("exclude_archived") && reason.contains("True"),
        "{reason}"
    );
    ok(&e
        .bot("conversations.list", &[("exclude_archived", "1")])
        .await);

    let v = e
        .bot(
            "chat.postMessage",
            &[("channel", "C0000001"), ("blocks", "[{'type': 'section'}]")],
        )
        .await;
    assert_eq!(err(&v), "invalid_blocks");
    let v = e.bot("conversations.history", &[]).await;
    assert_eq!(err(&v), "invalid_arguments");
    let v = e.bot("users.list", &[("limit[0]", "1")]).await;
    assert_eq!(err(&v), "invalid_array_arg");
    let v = e
        .bot(
            "chat.postMessage",
            &[
                ("channel", "C0000001"),
                (
                    "blocks",
                    r#"[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]"#,
                ),
            ],
        )
        .await;
    ok(&v);

    // Invites: a space in the channel list is a lookup of a channel named " C…".
    let invite = [
        ("email", "new.person@example.com"),
        ("channels", "C0000001, C0000002"),
    ];
    let v = e
        .call("users.admin.invite", Some(tokens::USER), &invite)
        .await
        .1;
    assert_eq!(err(&v), "channel_not_found");
    let invite = [
        ("email", "new.person@example.com"),
        ("channels", "C0000001,C0000002"),
    ];
    ok(&e
        .call("users.admin.invite", Some(tokens::USER), &invite)
        .await
        .1);
    let v = e
        .call(
            "admin.users.invite",
            Some(tokens::USER),
            &[
                ("team_id", "T0EMULATOR"),
                ("email", "other@example.com"),
                ("channel_ids", "C0000001"),
            ],
        )
        .await
        .1;
    ok(&v);
    let v = e
        .call(
            "users.lookupByEmail",
            Some(tokens::BOT),
            &[("email", "user03@example.com")],
        )
        .await
        .1;
    assert_eq!(ok(&v)["user"]["id"], "U0000003");
    let v = e
        .bot("users.lookupByEmail", &[("email", "nobody@example.com")])
        .await;
    assert_eq!(err(&v), "users_not_found");
    e.run.shutdown().await;
}

#[tokio::test]
async fn body_encodings_follow_slack_rules() {
    let e = emu().await;
    let body = r#"{"channel":"C0000001","text":"json"}"#;
    let (_, v) = e
        .call_json("chat.postMessage", tokens::BOT, JSON_UTF8, body)
        .await;
    assert!(ok(&v).get("warning").is_none());
    let (_, v) = e
        .call_json("chat.postMessage", tokens::BOT, "application/json", body)
        .await;
    assert_eq!(ok(&v)["warning"], "missing_charset");
    assert_eq!(
        v["response_metadata"]["warnings"],
        json!(["missing_charset"])
    );
    let (_, v) = e
        .call_json("users.list", tokens::BOT, JSON_UTF8, "{}")
        .await;
    assert_eq!(err(&v), "invalid_arguments");
    let (_, v) = e
        .call_json("chat.postMessage", tokens::BOT, JSON_UTF8, "{oops")
        .await;
    assert_eq!(err(&v), "invalid_json");
    let (_, v) = e
        .call_json("chat.postMessage", tokens::BOT, JSON_UTF8, "[1]")
        .await;
    assert_eq!(err(&v), "json_not_object");
    let (_, v) = e
        .call_json(
            "users.list",
            tokens::BOT,
            "application/x-www-form-urlencoded; charset=utf-8",
            "limit=1",
        )
        .await;
    assert_eq!(ok(&v)["warning"], "superfluous_charset");
    let (_, v) = e
        .call_json("users.list", tokens::BOT, "application/xml", "<x/>")
        .await;
    assert_eq!(err(&v), "invalid_post_type");
    let req = e
        .http
        .post(format!("{}users.list", e.run.api_url()))
        .bearer_auth(tokens::BOT)
        .body("limit=1");
    assert_eq!(err(&e.finish(req).await.1), "missing_post_type");
    // GET takes its arguments from the query string.
    let req = e
        .http
        .get(format!("{}users.list?limit=2", e.run.api_url()))
        .bearer_auth(tokens::BOT);
    assert_eq!(
        e.finish(req).await.1["members"].as_array().unwrap().len(),
        2
    );

    let log = e.requests().await;
    assert_eq!(log[2]["rejected"], "json body not accepted by users.list");
    e.run.shutdown().await;
}

#[tokio::test]
async fn external_file_upload_in_three_steps() {
    let e = emu().await;
    let data = b"hello, file!";
    let v = e
        .bot(
            "files.getUploadURLExternal",
            &[
                ("filename", "note.txt"),
                ("length", &data.len().to_string()),
            ],
        )
        .await;
    let url = ok(&v)["upload_url"].as_str().unwrap().to_string();
    let id = v["file_id"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/upload/v1/", e.run.base_url())));

    let r = e.http.post(&url).body(data.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"OK - 12");

    let files = json!([{"id": id, "title": "A note"}]).to_string();
    let v = e
        .bot(
            "files.completeUploadExternal",
            &[
                ("files", &files),
                ("channel_id", "C0000001"),
                ("initial_comment", "here it is"),
            ],
        )
        .await;
    let f = &ok(&v)["files"][0];
    assert_eq!(f["id"], id.as_str());
    assert_eq!(f["title"], "A note");
    assert_eq!(f["name"], "note.txt");
    assert_eq!(f["size"], 12);
    assert!(f["shares"]["public"]["C0000001"].is_array());

    let h = e
        .bot(
            "conversations.history",
            &[("channel", "C0000001"), ("limit", "1")],
        )
        .await;
    assert_eq!(h["messages"][0]["text"], "here it is");
    assert_eq!(h["messages"][0]["files"][0]["id"], id.as_str());
    let info = e.bot("files.info", &[("file", &id)]).await;
    assert_eq!(ok(&info)["file"]["size"], 12);
    let v = e
        .bot(
            "files.completeUploadExternal",
            &[("files", r#"[{"id":"F404"}]"#)],
        )
        .await;
    assert_eq!(err(&v), "file_not_found");
    let upload = e
        .requests()
        .await
        .into_iter()
        .find(|r| r["path"].as_str().unwrap().starts_with("/upload/"))
        .unwrap();
    assert_eq!(upload["auth"], "none");
    e.run.shutdown().await;
}

#[tokio::test]
async fn request_log_never_holds_a_token() {
    let e = emu().await;
    e.bot("auth.test", &[]).await;
    e.call("auth.test", None, &[("token", tokens::USER)]).await;
    e.call_json(
        "chat.postMessage",
        tokens::LIMITED_BOT,
        JSON_UTF8,
        &json!({"channel": "C0000001", "text": "t", "token": tokens::APP}).to_string(),
    )
    .await;
    let url = format!("{}auth.test?token={}", e.run.api_url(), tokens::BOT);
    e.finish(e.http.get(url)).await;
    e.call("auth.test", Some("xoxb-some-other-secret"), &[])
        .await;
    let raw = e
        .http
        .get(format!("{}/_emulator/requests", e.run.base_url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let text = String::from_utf8(raw.to_vec()).unwrap();
    for t in [
        tokens::BOT,
        tokens::USER,
        tokens::APP,
        tokens::LIMITED_BOT,
        "xoxb-some-other-secret",
    ] {
        assert!(!text.contains(t), "{t} leaked into the log: {text}");
    }
    let log: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(log.len(), 5);
    assert_eq!(log[1]["auth"], "body");
    assert_eq!(log[1]["token_kind"], "user");
    assert_eq!(log[4]["token_kind"], "unknown");
    let del = e
        .http
        .delete(format!("{}/_emulator/requests", e.run.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert!(e.requests().await.is_empty());
    e.run.shutdown().await;
}

#[tokio::test]
async fn conversations_lifecycle() {
    let e = emu().await;
    let v = e
        .call(
            "conversations.create",
            Some(tokens::USER),
            &[("name", "new-room")],
        )
        .await
        .1;
    let id = ok(&v)["channel"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        err(&e
            .call(
                "conversations.create",
                Some(tokens::USER),
                &[("name", "new-room")]
            )
            .await
            .1),
        "name_taken"
    );
    ok(&e.bot("conversations.join", &[("channel", &id)]).await);
    let m = e.bot("conversations.members", &[("channel", &id)]).await;
    assert_eq!(ok(&m)["members"].as_array().unwrap().len(), 2);
    let t = e
        .bot(
            "conversations.setTopic",
            &[("channel", &id), ("topic", "Plans")],
        )
        .await;
    assert_eq!(ok(&t)["channel"]["topic"]["value"], "Plans");
    let r = e
        .bot(
            "reactions.add",
            &[
                ("channel", &id),
                ("name", "tada"),
                ("timestamp", "1.000000"),
            ],
        )
        .await;
    assert_eq!(err(&r), "message_not_found");
    ok(&e.bot("conversations.leave", &[("channel", &id)]).await);
    ok(&e
        .call(
            "conversations.archive",
            Some(tokens::USER),
            &[("channel", &id)],
        )
        .await
        .1);
    let i = e.bot("conversations.info", &[("channel", &id)]).await;
    assert_eq!(ok(&i)["channel"]["is_archived"], true);
    let o = e.bot("conversations.open", &[("users", "U0000003")]).await;
    assert!(ok(&o)["channel"]["id"].as_str().unwrap().starts_with('D'));
    let m = e
        .bot(
            "chat.postMessage",
            &[("channel", "C0000003"), ("text", "hi ops")],
        )
        .await;
    let ts = ok(&m)["ts"].as_str().unwrap().to_string();
    let l = e
        .bot(
            "chat.getPermalink",
            &[("channel", "C0000003"), ("message_ts", &ts)],
        )
        .await;
    let link = ok(&l)["permalink"].as_str().unwrap();
    assert!(link.ends_with(&format!("/archives/C0000003/p{}", ts.replace('.', ""))));
    let react = [
        ("channel", "C0000003"),
        ("name", "tada"),
        ("timestamp", ts.as_str()),
    ];
    ok(&e.bot("reactions.add", &react).await);
    assert_eq!(
        err(&e.bot("reactions.add", &react).await),
        "already_reacted"
    );
    let eph = [
        ("channel", "C0000003"),
        ("user", "U0000002"),
        ("text", "psst"),
    ];
    assert!(ok(&e.bot("chat.postEphemeral", &eph).await)["message_ts"].is_string());
    let p = e
        .call(
            "conversations.info",
            Some(tokens::BOT),
            &[("channel", "G0000002")],
        )
        .await
        .1;
    assert_eq!(err(&p), "channel_not_found");
    e.run.shutdown().await;
}
