//! From a Slack message event to the `slack.message` trigger: which events count as new
//! messages ([`Filter`]), what identifies them ([`View::keys`]), and the payload in st2's
//! schema plus slackctl's extra keys ([`payload`]). Pure functions over JSON values.

use super::dedupe;
use serde_json::{Map, Value, json};

/// The trigger every line carries (st2's `slack.message`).
pub const TRIGGER: &str = "slack.message";

/// Which message events become triggers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `bot_message` and anything with a `bot_id` (st2's `allow_bot_messages`).
    pub allow_bots: bool,
    /// Subtypes emitted besides plain messages (e.g. `thread_broadcast`, `file_share`).
    pub subtypes: Vec<String>,
    /// Emit `message_changed` (edits).
    pub include_edits: bool,
    /// Emit `message_deleted` (deletions).
    pub include_deletes: bool,
}

impl Filter {
    /// Normalises the choice: listing `bot_message`, `message_changed` or `message_deleted`
    /// among the subtypes means the same as the dedicated switches.
    pub fn new(
        allow_bots: bool,
        subtypes: Vec<String>,
        include_edits: bool,
        include_deletes: bool,
    ) -> Filter {
        let has = |s: &str| subtypes.iter().any(|x| x == s);
        Filter {
            allow_bots: allow_bots || has("bot_message"),
            include_edits: include_edits || has("message_changed"),
            include_deletes: include_deletes || has("message_deleted"),
            subtypes,
        }
    }

    /// `Ok` when the event is to be emitted; otherwise why not (for `-v` logs).
    pub fn check(&self, event: &Value) -> Result<(), String> {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "message" {
            return Err(format!("not a message event (type `{kind}`)"));
        }
        let Some(view) = View::of(event) else {
            return Err("message event without channel or ts".into());
        };
        match view.subtype {
            None => {}
            Some("message_changed") if !self.include_edits => {
                return Err("an edit (message_changed); --include-edits emits edits".into());
            }
            Some("message_deleted") if !self.include_deletes => {
                return Err("a deletion (message_deleted); --include-deletes emits them".into());
            }
            Some("message_changed" | "message_deleted") => {}
            Some("bot_message") if !self.allow_bots => {
                return Err("a bot message; --allow-bot-messages emits bot messages".into());
            }
            Some("bot_message") => {}
            Some(s) if !self.subtypes.iter().any(|x| x == s) => {
                return Err(format!(
                    "subtype `{s}`; choose subtypes to emit with --subtypes"
                ));
            }
            Some(_) => {}
        }
        if view.msg.get("bot_id").is_some_and(|b| !b.is_null()) && !self.allow_bots {
            return Err("posted by an app (bot_id); --allow-bot-messages emits it".into());
        }
        Ok(())
    }
}

/// The parts of a message event the trigger is built from. For an edit the message is the
/// new version (`message`), for a deletion the old one (`previous_message`).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub event: &'a Value,
    /// The object carrying `user`, `text`, `attachments`, `blocks`, `thread_ts`.
    pub msg: &'a Value,
    pub channel: &'a str,
    /// The message's identity (`timestamp_raw`).
    pub ts: &'a str,
    /// The event's own ts (equal to `ts` for new messages; a fresh ts for edits/deletions).
    pub event_ts: &'a str,
    pub subtype: Option<&'a str>,
}

impl<'a> View<'a> {
    pub fn of(event: &'a Value) -> Option<View<'a>> {
        let s = |v: &'a Value, k: &str| v.get(k).and_then(Value::as_str);
        let channel = s(event, "channel").filter(|c| !c.is_empty())?;
        let event_ts = s(event, "ts").or_else(|| s(event, "event_ts"))?;
        let subtype = s(event, "subtype");
        let (msg, ts) = match subtype {
            Some("message_changed") => {
                let m = event.get("message").filter(|m| m.is_object())?;
                (m, s(m, "ts").unwrap_or(event_ts))
            }
            Some("message_deleted") => {
                let m = event
                    .get("previous_message")
                    .filter(|m| m.is_object())
                    .unwrap_or(event);
                (m, s(event, "deleted_ts").or(s(m, "ts")).unwrap_or(event_ts))
            }
            _ => (event, event_ts),
        };
        Some(View {
            event,
            msg,
            channel,
            ts,
            event_ts,
            subtype,
        })
    }

    pub fn user_id(&self) -> Option<&'a str> {
        self.msg.get("user").and_then(Value::as_str)
    }

    pub fn text(&self) -> &'a str {
        self.msg.get("text").and_then(Value::as_str).unwrap_or("")
    }

    /// Dedupe keys: channel + the event's exact ts, plus the delivery ids when known.
    pub fn keys(&self, event_id: Option<&str>, envelope_id: Option<&str>) -> Vec<String> {
        let mut keys = vec![dedupe::message_key(self.channel, self.event_ts)];
        // A Socket Mode redelivery repeats the event_id, so the envelope id is only needed
        // (and only kept, to save memory) when an envelope carries no event_id.
        match event_id {
            Some(e) => keys.push(dedupe::event_key(e)),
            None => keys.extend(envelope_id.map(dedupe::envelope_key)),
        }
        keys
    }
}

/// What the transport knows beyond the event itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery<'a> {
    pub event_id: Option<&'a str>,
    /// The workspace (`team_id` of the Events API wrapper).
    pub team: Option<&'a str>,
}

/// Whole seconds of a ts, read from its digits (never through a float).
pub fn whole_seconds(ts: &str) -> i64 {
    ts.split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn text_or<'a>(v: Option<&'a Value>, default: &'a str) -> &'a str {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
}

/// st2's user object (`users.info`'s user when known, else what the message says), plus
/// `email` and `title`.
pub fn user_object(view: &View, info: Option<&Value>) -> Value {
    let bot_id = view.msg.get("bot_id").and_then(Value::as_str);
    if let Some(u) = info {
        let p = &u["profile"];
        return json!({
            "id": u["id"],
            "name": u["name"],
            "first_name": text_or(p.get("first_name"), "Unknown"),
            "last_name": text_or(p.get("last_name"), "Unknown"),
            "real_name": text_or(p.get("real_name"), "Unknown"),
            "is_admin": u["is_admin"].as_bool().unwrap_or(false),
            "is_owner": u["is_owner"].as_bool().unwrap_or(false),
            "is_bot": u["is_bot"].as_bool().unwrap_or(false),
            "email": p.get("email").filter(|e| e.is_string()).cloned().unwrap_or(Value::Null),
            "title": p.get("title").filter(|e| e.is_string()).cloned().unwrap_or(Value::Null),
        });
    }
    // Not looked up: keep the ids we have. A bot message without a user gets st2's synthetic
    // user named after the bot.
    let (id, name) = match view.user_id() {
        Some(u) => (json!(u), u.to_string()),
        None => {
            let name = view
                .msg
                .get("username")
                .and_then(Value::as_str)
                .or_else(|| view.msg["bot_profile"]["name"].as_str())
                .or(bot_id)
                .unwrap_or("Unknown");
            (bot_id.map_or(Value::Null, |b| json!(b)), name.to_string())
        }
    };
    json!({
        "id": id,
        "name": name,
        "first_name": "Unknown",
        "last_name": "Unknown",
        "real_name": "Unknown",
        "is_admin": false,
        "is_owner": false,
        "is_bot": bot_id.is_some() || view.user_id().is_none(),
        "email": null,
        "title": null,
    })
}

/// `channel_type` from the event, else from `conversations.info`, else from a `D` id.
pub fn channel_type(view: &View, info: Option<&Value>) -> Option<String> {
    if let Some(t) = view.event.get("channel_type").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    if let Some(c) = info {
        let flag = |k: &str| c[k].as_bool().unwrap_or(false);
        let t = if flag("is_im") {
            "im"
        } else if flag("is_mpim") {
            "mpim"
        } else if flag("is_private") || flag("is_group") {
            "group"
        } else {
            "channel"
        };
        return Some(t.to_string());
    }
    view.channel.starts_with('D').then(|| "im".to_string())
}

/// st2's channel object: `{id, name, topic, is_group}`, topic being the topic's text.
/// `is_group` is true for private channels and group DMs (what "group" meant in st2's days).
pub fn channel_object(view: &View, info: Option<&Value>, kind: Option<&str>) -> Value {
    let grouped = matches!(kind, Some("group" | "mpim"));
    match info {
        Some(c) => {
            let name = c["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or_else(|| c["user"].as_str())
                .unwrap_or(view.channel);
            json!({
                "id": c["id"].as_str().unwrap_or(view.channel),
                "name": name,
                "topic": c["topic"]["value"].as_str().unwrap_or(""),
                "is_group": c["is_group"].as_bool().unwrap_or(false) || grouped,
            })
        }
        None => json!({
            "id": view.channel,
            "name": view.channel,
            "topic": "",
            "is_group": grouped,
        }),
    }
}

/// The trigger payload. `text` is the message text, already stripped when asked for.
pub fn payload(
    view: &View,
    user: Option<&Value>,
    channel: Option<&Value>,
    text: String,
    d: Delivery,
) -> Value {
    let kind = channel_type(view, channel);
    let mut p = Map::new();
    p.insert("user".into(), user_object(view, user));
    p.insert(
        "channel".into(),
        channel_object(view, channel, kind.as_deref()),
    );
    p.insert("timestamp".into(), json!(whole_seconds(view.ts)));
    p.insert("timestamp_raw".into(), json!(view.ts));
    p.insert("text".into(), json!(text));
    for k in ["attachments", "blocks"] {
        if let Some(v) = view.msg.get(k).filter(|v| !v.is_null()) {
            p.insert(k.into(), v.clone());
        }
    }
    p.insert("channel_type".into(), json!(kind));
    if let Some(t) = view.msg.get("thread_ts").and_then(Value::as_str) {
        p.insert("thread_ts".into(), json!(t));
    }
    let team = view
        .msg
        .get("team")
        .or_else(|| view.event.get("team"))
        .and_then(Value::as_str)
        .or(d.team);
    if let Some(t) = team {
        p.insert("team".into(), json!(t));
    }
    if let Some(e) = d.event_id {
        p.insert("event_id".into(), json!(e));
    }
    if let Some(s) = view.subtype {
        p.insert("subtype".into(), json!(s));
    }
    if let Some(b) = view.msg.get("bot_id").and_then(Value::as_str) {
        p.insert("bot_id".into(), json!(b));
    }
    match view.subtype {
        Some("message_changed") => {
            let before = view.event["previous_message"]["text"].as_str();
            if let Some(t) = before {
                p.insert("previous_text".into(), json!(t));
            }
            p.insert("event_ts".into(), json!(view.event_ts));
        }
        Some("message_deleted") => {
            p.insert("event_ts".into(), json!(view.event_ts));
        }
        _ => {}
    }
    Value::Object(p)
}

/// One stdout line: exactly the body st2's generic webhook takes.
pub fn trigger_line(payload: Value) -> String {
    json!({"trigger": TRIGGER, "payload": payload}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(extra: Value) -> Value {
        let mut m = json!({
            "type": "message", "channel": "C1", "user": "U1", "text": "hi",
            "ts": "1700000000.000100", "team": "T1", "channel_type": "channel",
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    }

    fn user_info() -> Value {
        json!({"id": "U1", "name": "ada", "is_admin": true, "is_owner": false, "is_bot": false,
               "profile": {"first_name": "Ada", "last_name": "Lovelace", "real_name": "Ada Lovelace",
                           "email": "ada@example.com", "title": "Engineer"}})
    }

    fn chan_info() -> Value {
        json!({"id": "C1", "name": "general", "is_channel": true, "is_private": false,
               "is_group": false, "topic": {"value": "Deploys", "creator": "U1", "last_set": 1}})
    }

    #[test]
    fn st2_schema_and_extra_keys() {
        let ev = msg(json!({"thread_ts": "1699999999.000001", "attachments": [{"text": "a"}]}));
        let v = View::of(&ev).unwrap();
        let p = payload(
            &v,
            Some(&user_info()),
            Some(&chan_info()),
            "hi".into(),
            Delivery {
                event_id: Some("Ev1"),
                team: Some("T9"),
            },
        );
        assert_eq!(
            p,
            json!({
                "user": {"id": "U1", "name": "ada", "first_name": "Ada", "last_name": "Lovelace",
                         "real_name": "Ada Lovelace", "is_admin": true, "is_owner": false,
                         "is_bot": false, "email": "ada@example.com", "title": "Engineer"},
                "channel": {"id": "C1", "name": "general", "topic": "Deploys", "is_group": false},
                "timestamp": 1700000000,
                "timestamp_raw": "1700000000.000100",
                "text": "hi",
                "attachments": [{"text": "a"}],
                "channel_type": "channel",
                "thread_ts": "1699999999.000001",
                "team": "T1",
                "event_id": "Ev1",
            })
        );
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            &keys[..5],
            ["user", "channel", "timestamp", "timestamp_raw", "text"]
        );
        assert!(p["timestamp"].is_i64());
        let line = trigger_line(p);
        assert!(line.starts_with(r#"{"trigger":"slack.message","payload":{"user":"#));
        assert!(!line.contains('\n'));
    }

    #[test]
    fn unknown_user_and_channel_keep_the_ids() {
        let ev = msg(json!({"channel": "D7", "channel_type": null, "team": null}));
        let ev = {
            let mut e = ev;
            e.as_object_mut().unwrap().remove("channel_type");
            e
        };
        let v = View::of(&ev).unwrap();
        let p = payload(&v, None, None, "hi".into(), Delivery::default());
        assert_eq!(p["user"]["id"], "U1");
        assert_eq!(p["user"]["name"], "U1");
        assert_eq!(p["user"]["is_bot"], false);
        assert_eq!(
            p["channel"],
            json!({"id": "D7", "name": "D7", "topic": "", "is_group": false})
        );
        assert_eq!(p["channel_type"], "im");
        assert!(p.get("event_id").is_none() && p.get("subtype").is_none());
    }

    #[test]
    fn bot_message_without_user_gets_a_synthetic_user() {
        let mut ev =
            msg(json!({"subtype": "bot_message", "bot_id": "B1", "username": "deploybot"}));
        ev.as_object_mut().unwrap().remove("user");
        let v = View::of(&ev).unwrap();
        let p = payload(&v, None, None, "x".into(), Delivery::default());
        assert_eq!(p["user"]["id"], "B1");
        assert_eq!(p["user"]["name"], "deploybot");
        assert_eq!(p["user"]["is_bot"], true);
        assert_eq!(p["subtype"], "bot_message");
        assert_eq!(p["bot_id"], "B1");
    }

    #[test]
    fn private_channels_and_group_dms_are_groups() {
        let ev = msg(json!({"channel": "C9", "channel_type": "group"}));
        let v = View::of(&ev).unwrap();
        let info = json!({"id": "C9", "name": "leadership", "is_private": true, "is_group": false,
                          "topic": {"value": ""}});
        let p = payload(&v, None, Some(&info), "".into(), Delivery::default());
        assert_eq!(p["channel"]["is_group"], true);
        assert_eq!(p["channel"]["name"], "leadership");
        // Without channel_type in the event (RTM), conversations.info decides.
        let mut rtm = ev.clone();
        rtm.as_object_mut().unwrap().remove("channel_type");
        let v = View::of(&rtm).unwrap();
        assert_eq!(channel_type(&v, Some(&info)).as_deref(), Some("group"));
        let im = json!({"id": "D1", "is_im": true, "user": "U2"});
        assert_eq!(channel_type(&v, Some(&im)).as_deref(), Some("im"));
        assert_eq!(channel_object(&v, Some(&im), Some("im"))["name"], "U2");
    }

    #[test]
    fn default_filter_is_st2s() {
        let f = Filter::default();
        assert!(f.check(&msg(json!({}))).is_ok());
        for sub in [
            "channel_join",
            "thread_broadcast",
            "bot_message",
            "message_changed",
            "file_share",
        ] {
            assert!(
                f.check(&msg(json!({"subtype": sub, "message": {"ts": "1.2"}})))
                    .is_err(),
                "{sub}"
            );
        }
        assert!(
            f.check(&msg(json!({"bot_id": "B1"}))).is_err(),
            "apps are bots too"
        );
        assert!(f.check(&json!({"type": "reaction_added"})).is_err());
        assert!(
            f.check(&json!({"type": "message", "text": "no channel"}))
                .is_err()
        );
    }

    #[test]
    fn chosen_subtypes_bots_edits_and_deletes() {
        let f = Filter::new(true, vec!["thread_broadcast".into()], false, false);
        assert!(
            f.check(&msg(json!({"subtype": "bot_message", "bot_id": "B1"})))
                .is_ok()
        );
        assert!(f.check(&msg(json!({"bot_id": "B1"}))).is_ok());
        assert!(
            f.check(&msg(json!({"subtype": "thread_broadcast"})))
                .is_ok()
        );
        assert!(f.check(&msg(json!({"subtype": "file_share"}))).is_err());
        let edit = msg(
            json!({"subtype": "message_changed", "ts": "1700000001.000001",
            "message": {"user": "U1", "text": "new", "ts": "1700000000.000100"},
            "previous_message": {"user": "U1", "text": "old", "ts": "1700000000.000100"}}),
        );
        assert!(f.check(&edit).is_err());
        let f = Filter::new(false, vec!["message_changed".into()], false, false);
        assert!(f.check(&edit).is_ok());
        let v = View::of(&edit).unwrap();
        assert_eq!(v.ts, "1700000000.000100");
        assert_eq!(v.event_ts, "1700000001.000001");
        let p = payload(&v, None, None, v.text().into(), Delivery::default());
        assert_eq!(p["text"], "new");
        assert_eq!(p["previous_text"], "old");
        assert_eq!(p["timestamp_raw"], "1700000000.000100");
        let del = msg(
            json!({"subtype": "message_deleted", "ts": "1700000002.000001",
            "deleted_ts": "1700000000.000100", "previous_message": {"user": "U1", "text": "old"}}),
        );
        assert!(f.check(&del).is_err());
        assert!(Filter::new(false, vec![], false, true).check(&del).is_ok());
        // A bot's edit still needs --allow-bot-messages.
        let mut bot_edit = edit.clone();
        bot_edit["message"]["bot_id"] = json!("B1");
        assert!(
            Filter::new(false, vec![], true, false)
                .check(&bot_edit)
                .is_err()
        );
    }

    #[test]
    fn keys_use_exact_ts_and_delivery_ids() {
        let a = msg(json!({"ts": "1700000000.000100"}));
        let b = msg(json!({"ts": "1700000000.000200"}));
        let (va, vb) = (View::of(&a).unwrap(), View::of(&b).unwrap());
        assert_ne!(va.keys(None, None), vb.keys(None, None));
        // channel+ts and the event id; the envelope id only stands in for a missing event id.
        assert_eq!(va.keys(Some("Ev1"), Some("e-1")).len(), 2);
        assert!(va.keys(None, Some("e-1")).iter().any(|k| k.contains("e-1")));
        assert_eq!(whole_seconds("1700000000.999999"), 1700000000);
        assert_eq!(whole_seconds("garbage"), 0);
    }
}
