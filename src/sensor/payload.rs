//! From a Slack message event to the `slack.message` trigger: which events count as new
//! messages ([`Filter`]), what identifies them ([`Message::keys`]), and the payload in st2's
//! schema plus slackctl's extra keys ([`payload`]), written straight to its line. Pure
//! functions over the typed, borrowed [`Event`] and the looked-up [`UserInfo`] / [`ChannelInfo`].

use super::dedupe;
use super::event::{Event, Raw};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;

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
    /// Drop direct messages and group DMs, as st2's own pack did (its sensor shim's default).
    pub drop_direct: bool,
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
            drop_direct: false,
        }
    }

    /// Also drops direct messages and group DMs (`im`, `mpim`; a `D` id when the event does
    /// not say its channel type).
    pub fn without_direct_messages(mut self) -> Filter {
        self.drop_direct = true;
        self
    }

    /// The message to emit, or why the event is not emitted (for `-v` logs).
    pub fn check<'a>(&self, event: Event<'a>) -> Result<Message<'a>, String> {
        let kind = event.kind.get().unwrap_or("");
        if kind != "message" {
            return Err(format!("not a message event (type `{kind}`)"));
        }
        let Some(m) = Message::of(event) else {
            return Err("message event without channel or ts".into());
        };
        if self.drop_direct {
            let direct = match m.event.channel_type.get() {
                Some(t) => t == "im" || t == "mpim",
                None => m.channel().starts_with('D'),
            };
            if direct {
                return Err("a direct message; sensor.direct_messages emits them".into());
            }
        }
        match m.subtype() {
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
        if m.msg().bot_id.0.is_some() && !self.allow_bots {
            return Err("posted by an app (bot_id); --allow-bot-messages emits it".into());
        }
        Ok(m)
    }
}

/// A message event with a channel and a ts. For an edit the message is the new version
/// (`message`), for a deletion the old one (`previous_message`).
#[derive(Debug)]
pub struct Message<'a> {
    pub event: Event<'a>,
    /// The edited or deleted message, when the event nests one.
    nested: Option<Event<'a>>,
    /// The text before an edit.
    previous_text: Option<Cow<'a, str>>,
}

impl<'a> Message<'a> {
    /// `None` without a channel or a ts, or for an edit without its new message.
    pub fn of(event: Event<'a>) -> Option<Message<'a>> {
        event.channel.get().filter(|c| !c.is_empty())?;
        event.ts.get().or(event.event_ts.get())?;
        let (nested, previous_text) = match event.subtype.get() {
            Some("message_changed") => {
                let new = Event::nested(event.message)?;
                let old = Event::nested(event.previous_message);
                (Some(new), old.and_then(|o| o.text.0))
            }
            Some("message_deleted") => (Event::nested(event.previous_message), None),
            _ => (None, None),
        };
        Some(Message {
            event,
            nested,
            previous_text,
        })
    }

    /// The object carrying `user`, `text`, `attachments`, `blocks`, `thread_ts`.
    pub fn msg(&self) -> &Event<'a> {
        self.nested.as_ref().unwrap_or(&self.event)
    }

    pub fn channel(&self) -> &str {
        self.event.channel.get().unwrap_or_default()
    }

    /// The event's own ts (equal to `ts` for new messages; a fresh ts for edits/deletions).
    pub fn event_ts(&self) -> &str {
        let e = &self.event;
        e.ts.get().or(e.event_ts.get()).unwrap_or_default()
    }

    /// The message's identity (`timestamp_raw`).
    pub fn ts(&self) -> &str {
        let own = self.nested.as_ref().and_then(|m| m.ts.get());
        match self.subtype() {
            Some("message_changed") => own.unwrap_or(self.event_ts()),
            Some("message_deleted") => self
                .event
                .deleted_ts
                .get()
                .or(own)
                .unwrap_or(self.event_ts()),
            _ => self.event_ts(),
        }
    }

    pub fn subtype(&self) -> Option<&str> {
        self.event.subtype.get()
    }

    pub fn user_id(&self) -> Option<&str> {
        self.msg().user.get()
    }

    pub fn text(&self) -> &str {
        self.msg().text.get().unwrap_or("")
    }

    /// Dedupe keys: channel + the event's exact ts, plus the event id when known, else the
    /// envelope id (a Socket Mode redelivery repeats the event id, so the envelope id is only
    /// needed, and only kept, to save memory, when an envelope carries none).
    pub fn keys(&self, event_id: Option<&str>, envelope_id: Option<&str>) -> [Option<u64>; 2] {
        let delivery = match event_id {
            Some(e) => Some(dedupe::event_key(e)),
            None => envelope_id.map(dedupe::envelope_key),
        };
        [
            Some(dedupe::message_key(self.channel(), self.event_ts())),
            delivery,
        ]
    }
}

/// What the transport knows beyond the event itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery<'a> {
    pub event_id: Option<&'a str>,
    /// The workspace (`team_id` of the Events API wrapper).
    pub team: Option<&'a str>,
    /// `Some("partial")` when some user or channel details could not be looked up in time.
    pub enrichment: Option<&'static str>,
}

/// Whole seconds of a ts, read from its digits (never through a float).
pub fn whole_seconds(ts: &str) -> i64 {
    ts.split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn text_or(v: &Value, default: &str) -> String {
    v.as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
        .to_string()
}

fn non_empty(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// What a payload needs from `users.info`'s user, read once when it is cached (not per
/// message).
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    pub id: Option<String>,
    pub name: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub real_name: String,
    pub is_admin: bool,
    pub is_owner: bool,
    pub is_bot: bool,
    pub email: Option<String>,
    pub title: Option<String>,
    /// The name a person sees (display name, else real name, else handle), for stripping.
    pub display: Option<String>,
}

impl UserInfo {
    pub fn of(u: &Value) -> UserInfo {
        let p = &u["profile"];
        UserInfo {
            id: u["id"].as_str().map(str::to_string),
            name: u["name"].as_str().map(str::to_string),
            first_name: text_or(&p["first_name"], "Unknown"),
            last_name: text_or(&p["last_name"], "Unknown"),
            real_name: text_or(&p["real_name"], "Unknown"),
            is_admin: u["is_admin"].as_bool().unwrap_or(false),
            is_owner: u["is_owner"].as_bool().unwrap_or(false),
            is_bot: u["is_bot"].as_bool().unwrap_or(false),
            email: p["email"].as_str().map(str::to_string),
            title: p["title"].as_str().map(str::to_string),
            display: non_empty(&p["display_name"])
                .or_else(|| non_empty(&p["real_name"]))
                .or_else(|| non_empty(&u["name"])),
        }
    }
}

/// What a payload needs from `conversations.info`'s channel, read once when it is cached.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    pub id: Option<String>,
    /// The channel's name, when it has one (DMs do not).
    pub name: Option<String>,
    /// The other person of a DM.
    pub user: Option<String>,
    pub topic: String,
    pub is_group: bool,
    /// `channel_type` as the Events API would say it.
    pub kind: &'static str,
}

impl ChannelInfo {
    pub fn of(c: &Value) -> ChannelInfo {
        let flag = |k: &str| c[k].as_bool().unwrap_or(false);
        let kind = if flag("is_im") {
            "im"
        } else if flag("is_mpim") {
            "mpim"
        } else if flag("is_private") || flag("is_group") {
            "group"
        } else {
            "channel"
        };
        ChannelInfo {
            id: c["id"].as_str().map(str::to_string),
            name: non_empty(&c["name"]),
            user: c["user"].as_str().map(str::to_string),
            topic: c["topic"]["value"].as_str().unwrap_or("").to_string(),
            is_group: flag("is_group"),
            kind,
        }
    }
}

/// st2's user object plus `email` and `title`.
#[derive(Debug, Serialize)]
pub struct UserObject<'x> {
    pub id: Option<&'x str>,
    pub name: Option<Cow<'x, str>>,
    pub first_name: &'x str,
    pub last_name: &'x str,
    pub real_name: &'x str,
    pub is_admin: bool,
    pub is_owner: bool,
    pub is_bot: bool,
    pub email: Option<&'x str>,
    pub title: Option<&'x str>,
}

/// `users.info`'s user when known, else what the message says.
pub fn user_object<'x>(m: &'x Message, info: Option<&'x UserInfo>) -> UserObject<'x> {
    let bot_id = m.msg().bot_id.get();
    if let Some(u) = info {
        return UserObject {
            id: u.id.as_deref(),
            name: u.name.as_deref().map(Cow::Borrowed),
            first_name: &u.first_name,
            last_name: &u.last_name,
            real_name: &u.real_name,
            is_admin: u.is_admin,
            is_owner: u.is_owner,
            is_bot: u.is_bot,
            email: u.email.as_deref(),
            title: u.title.as_deref(),
        };
    }
    // Not looked up: keep the ids we have. A bot message without a user gets st2's synthetic
    // user named after the bot.
    let (id, name) = match m.user_id() {
        Some(u) => (Some(u), Cow::Borrowed(u)),
        None => {
            let name = match m.msg().username.get() {
                Some(n) => Cow::Borrowed(n),
                None => m
                    .msg()
                    .bot_name()
                    .or(bot_id.map(Cow::Borrowed))
                    .unwrap_or(Cow::Borrowed("Unknown")),
            };
            (bot_id, name)
        }
    };
    UserObject {
        id,
        name: Some(name),
        first_name: "Unknown",
        last_name: "Unknown",
        real_name: "Unknown",
        is_admin: false,
        is_owner: false,
        is_bot: bot_id.is_some() || m.user_id().is_none(),
        email: None,
        title: None,
    }
}

/// `channel_type` from the event, else from `conversations.info`, else from a `D` id.
pub fn channel_type<'x>(m: &'x Message, info: Option<&ChannelInfo>) -> Option<&'x str> {
    if let Some(t) = m.event.channel_type.get() {
        return Some(t);
    }
    if let Some(c) = info {
        return Some(c.kind);
    }
    m.channel().starts_with('D').then_some("im")
}

/// st2's channel object: `{id, name, topic, is_group}`, topic being the topic's text.
#[derive(Debug, Serialize)]
pub struct ChannelObject<'x> {
    pub id: &'x str,
    pub name: &'x str,
    pub topic: &'x str,
    pub is_group: bool,
}

/// `is_group` is true for private channels and group DMs (what "group" meant in st2's days).
pub fn channel_object<'x>(
    m: &'x Message,
    info: Option<&'x ChannelInfo>,
    kind: Option<&str>,
) -> ChannelObject<'x> {
    let grouped = matches!(kind, Some("group" | "mpim"));
    match info {
        Some(c) => ChannelObject {
            id: c.id.as_deref().unwrap_or(m.channel()),
            name: c
                .name
                .as_deref()
                .or(c.user.as_deref())
                .unwrap_or(m.channel()),
            topic: &c.topic,
            is_group: c.is_group || grouped,
        },
        None => ChannelObject {
            id: m.channel(),
            name: m.channel(),
            topic: "",
            is_group: grouped,
        },
    }
}

/// The trigger payload, in st2's key order followed by slackctl's extra keys.
#[derive(Debug, Serialize)]
pub struct Payload<'x> {
    pub user: UserObject<'x>,
    pub channel: ChannelObject<'x>,
    pub timestamp: i64,
    pub timestamp_raw: &'x str,
    pub text: &'x str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Raw<'x>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Raw<'x>>,
    pub channel_type: Option<&'x str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<&'x str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<&'x str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<&'x str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtype: Option<&'x str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<&'x str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_text: Option<&'x str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_ts: Option<&'x str>,
    /// `"partial"`: a name lookup was slow or failed, so some names are missing (ids are there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<&'static str>,
}

/// The trigger payload. `text` is the message text, already stripped when asked for.
pub fn payload<'x>(
    m: &'x Message,
    user: Option<&'x UserInfo>,
    channel: Option<&'x ChannelInfo>,
    text: &'x str,
    d: Delivery<'x>,
) -> Payload<'x> {
    let kind = channel_type(m, channel);
    let msg = m.msg();
    let edited_or_deleted = matches!(m.subtype(), Some("message_changed" | "message_deleted"));
    Payload {
        user: user_object(m, user),
        channel: channel_object(m, channel, kind),
        timestamp: whole_seconds(m.ts()),
        timestamp_raw: m.ts(),
        text,
        attachments: msg.attachments,
        blocks: msg.blocks,
        channel_type: kind,
        thread_ts: msg.thread_ts.get(),
        team: msg.team.get().or(m.event.team.get()).or(d.team),
        event_id: d.event_id,
        subtype: m.subtype(),
        bot_id: msg.bot_id.get(),
        previous_text: m.previous_text.as_deref(),
        event_ts: edited_or_deleted.then(|| m.event_ts()),
        enrichment: d.enrichment,
    }
}

/// One stdout line: exactly the body st2's generic webhook takes.
#[derive(Serialize)]
struct Line<'x> {
    trigger: &'static str,
    payload: &'x Payload<'x>,
}

/// Writes the line for `payload` into `out` (cleared first), without the newline.
pub fn write_line(payload: &Payload, out: &mut Vec<u8>) -> serde_json::Result<()> {
    out.clear();
    serde_json::to_writer(
        out,
        &Line {
            trigger: TRIGGER,
            payload,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trigger_line(payload: &Payload) -> String {
        let mut out = Vec::new();
        write_line(payload, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn msg(extra: Value) -> String {
        let mut m = json!({
            "type": "message", "channel": "C1", "user": "U1", "text": "hi",
            "ts": "1700000000.000100", "team": "T1", "channel_type": "channel",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                m.as_object_mut().unwrap().remove(k);
            } else {
                m[k] = v.clone();
            }
        }
        m.to_string()
    }

    fn ev(text: &str) -> Event<'_> {
        Event::parse(text).unwrap()
    }

    fn message(text: &str) -> Message<'_> {
        Message::of(ev(text)).unwrap()
    }

    /// The payload as a JSON value, through its line (what a reader gets).
    fn value(p: &Payload) -> Value {
        let line: Value = serde_json::from_str(&trigger_line(p)).unwrap();
        assert_eq!(line["trigger"], TRIGGER);
        line["payload"].clone()
    }

    fn user_info() -> UserInfo {
        UserInfo::of(
            &json!({"id": "U1", "name": "ada", "is_admin": true, "is_owner": false, "is_bot": false,
               "profile": {"first_name": "Ada", "last_name": "Lovelace", "real_name": "Ada Lovelace",
                           "email": "ada@example.com", "title": "Engineer"}}),
        )
    }

    fn chan_info() -> ChannelInfo {
        ChannelInfo::of(
            &json!({"id": "C1", "name": "general", "is_channel": true, "is_private": false,
               "is_group": false, "topic": {"value": "Deploys", "creator": "U1", "last_set": 1}}),
        )
    }

    #[test]
    fn st2_schema_and_extra_keys() {
        let text = msg(json!({"thread_ts": "1699999999.000001", "attachments": [{"text": "a"}]}));
        let m = message(&text);
        let (user, chan) = (user_info(), chan_info());
        let d = Delivery {
            event_id: Some("Ev1"),
            team: Some("T9"),
            enrichment: None,
        };
        let p = payload(&m, Some(&user), Some(&chan), "hi", d);
        let line = trigger_line(&p);
        assert!(line.starts_with(r#"{"trigger":"slack.message","payload":{"user":"#));
        assert!(!line.contains('\n'));
        let v = value(&p);
        assert_eq!(
            v,
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
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "user",
                "channel",
                "timestamp",
                "timestamp_raw",
                "text",
                "attachments",
                "channel_type",
                "thread_ts",
                "team",
                "event_id"
            ]
        );
        assert!(v["timestamp"].is_i64());
    }

    #[test]
    fn text_with_quotes_and_control_characters_stays_on_one_json_line() {
        let text = msg(json!({"text": "line one\nline \"two\"\t\u{1}"}));
        let m = message(&text);
        let p = payload(&m, None, None, m.text(), Delivery::default());
        let line = trigger_line(&p);
        assert!(!line.contains('\n'));
        let v = value(&p);
        assert_eq!(v["text"], "line one\nline \"two\"\t\u{1}");
    }

    #[test]
    fn looked_up_details_are_read_once_with_slacks_fallbacks() {
        let u = UserInfo::of(&json!({"id": "U1", "name": "ada",
            "profile": {"display_name": "", "real_name": "Ada L", "first_name": ""}}));
        assert_eq!(u.display.as_deref(), Some("Ada L"));
        assert_eq!(u.first_name, "Unknown");
        assert_eq!((u.email, u.is_admin), (None, false));
        let bare = UserInfo::of(&json!({"id": "U2", "name": "bob"}));
        assert_eq!(bare.display.as_deref(), Some("bob"));
        let c = ChannelInfo::of(&json!({"id": "G1", "name": "", "is_group": true}));
        assert_eq!((c.name, c.kind, c.is_group), (None, "group", true));
        let mpim = ChannelInfo::of(&json!({"id": "G2", "name": "mpdm-a--b", "is_mpim": true}));
        assert_eq!(mpim.kind, "mpim");
    }

    #[test]
    fn unknown_user_and_channel_keep_the_ids() {
        let text = msg(json!({"channel": "D7", "channel_type": null, "team": null}));
        let m = message(&text);
        let p = value(&payload(&m, None, None, "hi", Delivery::default()));
        assert_eq!(p["user"]["id"], "U1");
        assert_eq!(p["user"]["name"], "U1");
        assert_eq!(p["user"]["is_bot"], false);
        assert_eq!(
            p["channel"],
            json!({"id": "D7", "name": "D7", "topic": "", "is_group": false})
        );
        assert_eq!(p["channel_type"], "im");
        assert!(p.get("event_id").is_none() && p.get("subtype").is_none());
        assert!(p.get("team").is_none());
    }

    #[test]
    fn bot_message_without_user_gets_a_synthetic_user() {
        let text = msg(
            json!({"subtype": "bot_message", "bot_id": "B1", "username": "deploybot", "user": null}),
        );
        let m = message(&text);
        let p = value(&payload(&m, None, None, "x", Delivery::default()));
        assert_eq!(p["user"]["id"], "B1");
        assert_eq!(p["user"]["name"], "deploybot");
        assert_eq!(p["user"]["is_bot"], true);
        assert_eq!(p["subtype"], "bot_message");
        assert_eq!(p["bot_id"], "B1");
        // Without a username, the bot profile's name; without that, the bot id.
        let text = msg(
            json!({"subtype": "bot_message", "bot_id": "B1", "user": null,
                              "bot_profile": {"name": "ci"}}),
        );
        let m = message(&text);
        assert_eq!(user_object(&m, None).name.as_deref(), Some("ci"));
        let text = msg(json!({"subtype": "bot_message", "bot_id": "B1", "user": null}));
        let m = message(&text);
        assert_eq!(user_object(&m, None).name.as_deref(), Some("B1"));
    }

    #[test]
    fn private_channels_and_group_dms_are_groups() {
        let text = msg(json!({"channel": "C9", "channel_type": "group"}));
        let m = message(&text);
        let info = ChannelInfo::of(
            &json!({"id": "C9", "name": "leadership", "is_private": true,
                          "is_group": false, "topic": {"value": ""}}),
        );
        let p = value(&payload(&m, None, Some(&info), "", Delivery::default()));
        assert_eq!(p["channel"]["is_group"], true);
        assert_eq!(p["channel"]["name"], "leadership");
        // Without channel_type in the event (RTM), conversations.info decides.
        let rtm = msg(json!({"channel": "C9", "channel_type": null}));
        let m = message(&rtm);
        assert_eq!(channel_type(&m, Some(&info)), Some("group"));
        let im = ChannelInfo::of(&json!({"id": "D1", "is_im": true, "user": "U2"}));
        assert_eq!(channel_type(&m, Some(&im)), Some("im"));
        assert_eq!(channel_object(&m, Some(&im), Some("im")).name, "U2");
    }

    #[test]
    fn default_filter_is_st2s() {
        let f = Filter::default();
        assert!(f.check(ev(&msg(json!({})))).is_ok());
        for sub in [
            "channel_join",
            "thread_broadcast",
            "bot_message",
            "message_changed",
            "file_share",
        ] {
            let text = msg(json!({"subtype": sub, "message": {"ts": "1.2"}}));
            assert!(f.check(ev(&text)).is_err(), "{sub}");
        }
        assert!(
            f.check(ev(&msg(json!({"bot_id": "B1"})))).is_err(),
            "apps are bots too"
        );
        assert!(f.check(ev(r#"{"type": "reaction_added"}"#)).is_err());
        assert!(
            f.check(ev(r#"{"type": "message", "text": "no channel"}"#))
                .is_err()
        );
        // Other event types may put objects where messages have strings.
        assert!(
            f.check(ev(r#"{"type": "user_change", "user": {"id": "U1"}}"#))
                .is_err()
        );
    }

    #[test]
    fn direct_messages_can_be_dropped() {
        let im = msg(json!({"channel": "D1", "channel_type": "im"}));
        let mpim = msg(json!({"channel": "G1", "channel_type": "mpim"}));
        let rtm_im = msg(json!({"channel": "D2", "channel_type": null}));
        let group = msg(json!({"channel": "G2", "channel_type": "group"}));
        let all = Filter::new(false, vec![], false, false);
        for m in [&im, &mpim, &rtm_im, &group] {
            assert!(all.check(ev(m)).is_ok());
        }
        let no_dm = all.without_direct_messages();
        for m in [&im, &mpim, &rtm_im] {
            assert!(no_dm.check(ev(m)).is_err());
        }
        assert!(no_dm.check(ev(&group)).is_ok());
        assert!(no_dm.check(ev(&msg(json!({})))).is_ok());
    }

    #[test]
    fn chosen_subtypes_bots_edits_and_deletes() {
        let f = Filter::new(true, vec!["thread_broadcast".into()], false, false);
        let bot = msg(json!({"subtype": "bot_message", "bot_id": "B1"}));
        assert!(f.check(ev(&bot)).is_ok());
        assert!(f.check(ev(&msg(json!({"bot_id": "B1"})))).is_ok());
        assert!(
            f.check(ev(&msg(json!({"subtype": "thread_broadcast"}))))
                .is_ok()
        );
        assert!(f.check(ev(&msg(json!({"subtype": "file_share"})))).is_err());
        let edit = msg(
            json!({"subtype": "message_changed", "ts": "1700000001.000001",
            "message": {"user": "U1", "text": "new", "ts": "1700000000.000100"},
            "previous_message": {"user": "U1", "text": "old", "ts": "1700000000.000100"}}),
        );
        assert!(f.check(ev(&edit)).is_err());
        let f = Filter::new(false, vec!["message_changed".into()], false, false);
        let m = f.check(ev(&edit)).unwrap();
        assert_eq!(m.ts(), "1700000000.000100");
        assert_eq!(m.event_ts(), "1700000001.000001");
        let p = value(&payload(&m, None, None, m.text(), Delivery::default()));
        assert_eq!(p["text"], "new");
        assert_eq!(p["previous_text"], "old");
        assert_eq!(p["timestamp_raw"], "1700000000.000100");
        assert_eq!(p["event_ts"], "1700000001.000001");
        let del = msg(
            json!({"subtype": "message_deleted", "ts": "1700000002.000001",
            "deleted_ts": "1700000000.000100", "previous_message": {"user": "U1", "text": "old"}}),
        );
        assert!(f.check(ev(&del)).is_err());
        let m = Filter::new(false, vec![], false, true)
            .check(ev(&del))
            .unwrap();
        assert_eq!(m.ts(), "1700000000.000100");
        assert_eq!(m.text(), "old");
        // An edit without its new message is not a message to emit.
        let broken = msg(json!({"subtype": "message_changed", "message": "gone"}));
        assert!(
            Filter::new(false, vec![], true, false)
                .check(ev(&broken))
                .is_err()
        );
        // A bot's edit still needs --allow-bot-messages.
        let bot_edit = msg(
            json!({"subtype": "message_changed", "ts": "1700000001.000001",
            "message": {"bot_id": "B1", "text": "new", "ts": "1700000000.000100"}}),
        );
        assert!(
            Filter::new(false, vec![], true, false)
                .check(ev(&bot_edit))
                .is_err()
        );
    }

    #[test]
    fn keys_use_exact_ts_and_delivery_ids() {
        let (a, b) = (
            msg(json!({"ts": "1700000000.000100"})),
            msg(json!({"ts": "1700000000.000200"})),
        );
        let (ma, mb) = (message(&a), message(&b));
        assert_ne!(ma.keys(None, None), mb.keys(None, None));
        // channel+ts and the event id; the envelope id only stands in for a missing event id.
        assert_eq!(
            ma.keys(Some("Ev1"), Some("e-1"))[1],
            Some(dedupe::event_key("Ev1"))
        );
        assert_eq!(
            ma.keys(None, Some("e-1"))[1],
            Some(dedupe::envelope_key("e-1"))
        );
        assert_eq!(ma.keys(None, None)[1], None);
        assert_eq!(whole_seconds("1700000000.999999"), 1700000000);
        assert_eq!(whole_seconds("garbage"), 0);
    }
}
