//! Events beyond new messages, with the fields Slack sends: `app_mention` when a message
//! mentions the app's bot user, `reaction_added` / `reaction_removed`, and
//! `member_joined_channel` with its `channel_join` message. They travel the same way message
//! events do (the workspace's broadcast, then Socket Mode, RTM and the Events API), so a Bolt
//! app's `app.event("app_mention")` fires against the emulator as it does against Slack.
//!
//! Also here: how the emulator dresses messages that stand in for a person typing in a Slack
//! client (`client_msg_id` and a rich-text block), and the Web API methods whose whole point is
//! one of these events (`reactions.remove`, `conversations.invite`).

use super::methods::{fields, resolve};
use super::request::ApiError;
use super::state::{Author, BOT_ID, BOT_USER_ID, Kind, NewMessage, TEAM_ID, Workspace};
use super::web_api::{Ctx, Handler};
use super::{Shared, json_response};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

type Answer = Result<Map<String, Value>, ApiError>;

/// Handlers for methods that exist to cause one of these events.
pub fn handler(method: &str) -> Option<Handler> {
    let h: Handler = match method {
        "reactions.remove" => reactions_remove,
        "conversations.invite" => conversations_invite,
        _ => return None,
    };
    Some(h)
}

/// How a mention of the bot user starts (`<@U0BOT>` or the legacy `<@U0BOT|name>`).
const BOT_MENTION: &str = "<@U0BOT";

/// The events that follow a stored message event: an `app_mention` when a new message (not
/// the bot's own) mentions the bot user. Slack sends it in addition to the `message` event.
pub fn after_message(event: &Value) -> Option<Value> {
    let text = event["text"].as_str()?;
    // Checked on every stored message (floods included), so without allocating.
    if !text.contains(BOT_MENTION) {
        return None;
    }
    // New messages only: edits, deletions and system notices do not mention anyone anew.
    match event["subtype"].as_str() {
        None | Some("thread_broadcast" | "file_share" | "me_message") => {}
        Some(_) => return None,
    }
    if event["bot_id"] == BOT_ID || event["user"] == BOT_USER_ID {
        return None;
    }
    let mut m = Map::new();
    m.insert("type".into(), json!("app_mention"));
    for k in [
        "user",
        "text",
        "ts",
        "client_msg_id",
        "team",
        "blocks",
        "files",
        "upload",
        "thread_ts",
        "parent_user_id",
        "bot_id",
        "channel",
        "event_ts",
    ] {
        if let Some(v) = event.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    Some(Value::Object(m))
}

/// A UUID-shaped `client_msg_id`, derived from the message's ts so it is unique and stable.
fn client_msg_id(ts: &str) -> String {
    let digits: String = ts.chars().filter(char::is_ascii_digit).collect();
    let n: u128 = digits.parse().unwrap_or(0);
    let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    let x = format!("{h:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

/// The rich-text block a Slack client sends along with what a person typed. Mentions
/// (`<@U…>`), channel links (`<#C…>`) and links (`<https://…|label>`) become their own
/// elements, as in Slack's own payloads.
pub fn rich_text_blocks(text: &str, block_id: &str) -> Value {
    let mut elements = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        if start > 0 {
            elements.push(json!({"type": "text", "text": unescape(&rest[..start])}));
        }
        let inner = &rest[start + 1..start + len];
        let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
        let el = if let Some(u) = target.strip_prefix('@') {
            json!({"type": "user", "user_id": u})
        } else if let Some(c) = target.strip_prefix('#') {
            json!({"type": "channel", "channel_id": c})
        } else if let Some(b) = target.strip_prefix('!') {
            json!({"type": "broadcast", "range": b})
        } else if label.is_empty() {
            json!({"type": "link", "url": target})
        } else {
            json!({"type": "link", "url": target, "text": label})
        };
        elements.push(el);
        rest = &rest[start + len + 1..];
    }
    if !rest.is_empty() {
        elements.push(json!({"type": "text", "text": unescape(rest)}));
    }
    json!([{
        "type": "rich_text",
        "block_id": block_id,
        "elements": [{"type": "rich_text_section", "elements": elements}],
    }])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Posts a message the way a person's Slack client does: with a `client_msg_id` and the
/// rich-text block of its text (unless the caller gave blocks or a subtype).
pub fn post_as_person(ws: &mut Workspace, idx: usize, mut msg: NewMessage) -> Value {
    let is_person = matches!(msg.author, Author::User(_));
    if !is_person || msg.extra.contains_key("subtype") {
        return ws.post_message(idx, msg);
    }
    let (key, ts) = ws.next_ts();
    msg.extra
        .entry("client_msg_id")
        .or_insert_with(|| json!(client_msg_id(&ts)));
    if !msg.extra.contains_key("blocks") {
        let block_id = client_msg_id(&format!("{ts}1"))[..5].to_string();
        msg.extra
            .insert("blocks".into(), rich_text_blocks(&msg.text, &block_id));
    }
    ws.store_message(idx, msg, key, ts)
}

/// `channel_type` as `member_joined_channel` carries it: `C` public, `G` private.
fn short_channel_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Public => "C",
        _ => "G",
    }
}

/// Announces that `user` joined channel `idx` (already added to its members): the
/// `member_joined_channel` event and the `channel_join` message Slack posts.
pub fn member_joined(ws: &mut Workspace, idx: usize, user: &str, inviter: Option<&str>) {
    let (_, event_ts) = ws.next_ts();
    let ch = &ws.channels[idx];
    let mut ev = json!({
        "type": "member_joined_channel",
        "user": user,
        "channel": ch.id,
        "channel_type": short_channel_type(ch.kind),
        "team": TEAM_ID,
        "event_ts": event_ts,
    });
    if let Some(i) = inviter {
        ev["inviter"] = json!(i);
    }
    ws.emit(ev);
    let subtype = if ch.kind == Kind::Public {
        "channel_join"
    } else {
        "group_join"
    };
    let text = match inviter {
        Some(i) => format!("<@{user}> has joined the channel by invitation from <@{i}>"),
        None => format!("<@{user}> has joined the channel"),
    };
    let mut extra = fields! {"subtype" => subtype};
    if let Some(i) = inviter {
        extra.insert("inviter".into(), json!(i));
    }
    ws.post_message(
        idx,
        NewMessage {
            author: Author::User(user.to_string()),
            text,
            extra,
            thread_ts: None,
            broadcast: false,
        },
    );
}

/// Announces a reaction change on message `m` of channel `idx`.
pub fn reaction_event(
    ws: &mut Workspace,
    idx: usize,
    m: usize,
    user: &str,
    name: &str,
    added: bool,
) {
    let (_, event_ts) = ws.next_ts();
    let ch = &ws.channels[idx];
    let msg = &ch.messages[m];
    let mut ev = json!({
        "type": if added { "reaction_added" } else { "reaction_removed" },
        "user": user,
        "reaction": name,
        "item": {"type": "message", "channel": ch.id, "ts": msg.ts},
        "event_ts": event_ts,
    });
    if let Some(owner) = msg.data.get("user") {
        ev["item_user"] = owner.clone();
    }
    ws.emit(ev);
}

/// Standard emoji names the emulator knows (Slack knows some 1,800; these are the ones apps
/// use most). Anything else is `invalid_name`, as an unknown name is on Slack. A skin tone
/// (`::skin-tone-2` … `-6`) may follow any of them.
const EMOJI: &[&str] = &[
    "+1",
    "-1",
    "100",
    "alarm_clock",
    "alien",
    "angry",
    "arrow_down",
    "arrow_left",
    "arrow_right",
    "arrow_up",
    "arrows_counterclockwise",
    "bangbang",
    "beers",
    "bell",
    "blue_heart",
    "bomb",
    "book",
    "boom",
    "bow",
    "brain",
    "broken_heart",
    "bug",
    "bulb",
    "calendar",
    "camera",
    "cat",
    "chart_with_downwards_trend",
    "chart_with_upwards_trend",
    "check",
    "clap",
    "clipboard",
    "clock1",
    "closed_lock_with_key",
    "cloud",
    "coffee",
    "confused",
    "construction",
    "cool",
    "cry",
    "crying_cat_face",
    "dart",
    "disappointed",
    "dog",
    "dollar",
    "done",
    "email",
    "eyes",
    "face_palm",
    "facepalm",
    "fire",
    "fireworks",
    "flushed",
    "fork_and_knife",
    "gear",
    "ghost",
    "gift",
    "grey_question",
    "grimacing",
    "grin",
    "grinning",
    "hammer",
    "hammer_and_wrench",
    "handshake",
    "hankey",
    "heart",
    "heart_eyes",
    "heavy_check_mark",
    "heavy_exclamation_mark",
    "heavy_minus_sign",
    "heavy_multiplication_x",
    "heavy_plus_sign",
    "hourglass",
    "hourglass_flowing_sand",
    "hugging_face",
    "hushed",
    "information_source",
    "innocent",
    "joy",
    "key",
    "kissing_heart",
    "large_blue_circle",
    "large_green_circle",
    "large_orange_circle",
    "laughing",
    "link",
    "lock",
    "loudspeaker",
    "mag",
    "mega",
    "memo",
    "money_with_wings",
    "moneybag",
    "muscle",
    "new",
    "no_entry",
    "no_entry_sign",
    "ok",
    "ok_hand",
    "open_mouth",
    "package",
    "page_facing_up",
    "paperclip",
    "partying_face",
    "pencil",
    "pencil2",
    "pensive",
    "pinched_fingers",
    "point_down",
    "point_left",
    "point_right",
    "point_up",
    "poop",
    "pray",
    "punch",
    "question",
    "rage",
    "raised_hands",
    "raising_hand",
    "recycle",
    "red_circle",
    "relaxed",
    "relieved",
    "robot_face",
    "rocket",
    "rotating_light",
    "scream",
    "see_no_evil",
    "shipit",
    "shrug",
    "skull",
    "sleeping",
    "slightly_smiling_face",
    "smile",
    "smiley",
    "smirk",
    "sob",
    "sparkles",
    "speech_balloon",
    "squirrel",
    "star",
    "star2",
    "stopwatch",
    "sunglasses",
    "sweat",
    "sweat_smile",
    "tada",
    "thinking_face",
    "thought_balloon",
    "thumbsdown",
    "thumbsup",
    "tools",
    "trophy",
    "truck",
    "unamused",
    "unlock",
    "v",
    "warning",
    "wave",
    "white_check_mark",
    "white_circle",
    "wink",
    "worried",
    "wrench",
    "x",
    "yum",
    "zap",
    "zzz",
    "large_yellow_circle",
    "green_heart",
    "yellow_heart",
    "purple_heart",
    "ballot_box_with_check",
    "exclamation",
    "grey_exclamation",
    "hourglass_done",
    "stop_sign",
    "thumbs_up",
    "thumbs_down",
    "upside_down_face",
    "wave_tone",
    "white_heart",
    "writing_hand",
    "zipper_mouth_face",
    "slack",
    "slack_call",
    "simple_smile",
    "arrow_forward",
    "repeat",
    "hear_no_evil",
    "speak_no_evil",
    "eyes_rolling",
    "face_with_rolling_eyes",
    "nerd_face",
    "party_parrot",
    "large_red_square",
    "large_green_square",
    "red_square",
    "green_square",
    "heavy_dollar_sign",
];

/// Whether `name` is an emoji reaction Slack would accept. Colons around the name are allowed,
/// as Slack strips them.
pub fn known_emoji(name: &str) -> bool {
    let name = name.trim_matches(':');
    let base = match name.split_once("::") {
        Some((b, tone)) => {
            let ok = tone
                .strip_prefix("skin-tone-")
                .is_some_and(|n| matches!(n, "2" | "3" | "4" | "5" | "6"));
            if !ok {
                return false;
            }
            b
        }
        None => name,
    };
    EMOJI.contains(&base)
}

// ---- control -------------------------------------------------------------------------------

/// `POST /_emulator/reactions {"channel": "C…" | "name", "ts": "…", "name": "tada",
/// "user": "U0000002", "remove": false}`: a person reacts (or takes a reaction back), with
/// the same event a Slack client's reaction causes.
pub async fn post_reaction(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let bad = |status: StatusCode, error: &str| {
        json_response(status, &json!({"ok": false, "error": error}))
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let (Some(channel), Some(ts), Some(name)) =
        (v["channel"].as_str(), v["ts"].as_str(), v["name"].as_str())
    else {
        return bad(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if !known_emoji(name) {
        return bad(StatusCode::OK, "invalid_name");
    }
    let name = name.trim_matches(':');
    let user = v["user"].as_str().unwrap_or(super::state::OWNER_ID);
    let remove = v["remove"].as_bool().unwrap_or(false);
    let mut ws = shared.lock();
    if ws.user(user).is_none() {
        return bad(StatusCode::OK, "user_not_found");
    }
    let Some(idx) = ws
        .channel_index(channel)
        .or_else(|| ws.channel_by_name(channel.trim_start_matches('#')))
    else {
        return bad(StatusCode::NOT_FOUND, "channel_not_found");
    };
    let Some(m) = ws.channels[idx].find(ts) else {
        return bad(StatusCode::OK, "message_not_found");
    };
    let data = &mut ws.channels[idx].messages[m].data;
    let list = data.entry("reactions").or_insert_with(|| json!([]));
    let Value::Array(list) = list else {
        return bad(StatusCode::OK, "internal_error");
    };
    let pos = list.iter().position(|r| r["name"] == name);
    let has = pos.is_some_and(|p| {
        list[p]["users"]
            .as_array()
            .is_some_and(|u| u.iter().any(|x| x == user))
    });
    match (remove, pos) {
        (false, _) if has => return bad(StatusCode::OK, "already_reacted"),
        (true, _) if !has => return bad(StatusCode::OK, "no_reaction"),
        (false, Some(p)) => {
            if let Some(u) = list[p]["users"].as_array_mut() {
                u.push(json!(user));
            }
            let n = list[p]["users"].as_array().map_or(0, Vec::len);
            list[p]["count"] = json!(n);
        }
        (false, None) => list.push(json!({"name": name, "users": [user], "count": 1})),
        (true, Some(p)) => {
            if let Some(u) = list[p]["users"].as_array_mut() {
                u.retain(|x| x != user);
            }
            let n = list[p]["users"].as_array().map_or(0, Vec::len);
            if n == 0 {
                list.remove(p);
            } else {
                list[p]["count"] = json!(n);
            }
        }
        (true, None) => return bad(StatusCode::OK, "no_reaction"),
    }
    if list.is_empty() {
        data.remove("reactions");
    }
    reaction_event(&mut ws, idx, m, user, name, !remove);
    drop(ws);
    json_response(StatusCode::OK, &json!({"ok": true}))
}

// ---- methods ------------------------------------------------------------------------------

fn reactions_remove(ctx: &mut Ctx) -> Answer {
    let raw = ctx.args.str("channel").unwrap_or_default();
    let ts = ctx.args.str("timestamp").unwrap_or_default();
    let name = ctx.args.str("name").unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::new("invalid_name"));
    }
    if raw.is_empty() || ts.is_empty() {
        return Err(ApiError::new("no_item_specified"));
    }
    let name = name.trim_matches(':').to_string();
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, false, false)?;
    let m = ws.channels[idx]
        .find(&ts)
        .ok_or_else(|| ApiError::new("message_not_found"))?;
    let data = &mut ws.channels[idx].messages[m].data;
    let reactions = data
        .get_mut("reactions")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ApiError::new("no_reaction"))?;
    let r = reactions
        .iter()
        .position(|r| r["name"] == json!(name))
        .ok_or_else(|| ApiError::new("no_reaction"))?;
    let users = reactions[r]["users"]
        .as_array_mut()
        .ok_or_else(|| ApiError::new("internal_error"))?;
    let u = users
        .iter()
        .position(|u| u == caller)
        .ok_or_else(|| ApiError::new("no_reaction"))?;
    users.remove(u);
    let left = users.len();
    if left == 0 {
        reactions.remove(r);
        if reactions.is_empty() {
            data.remove("reactions");
        }
    } else {
        reactions[r]["count"] = json!(left);
    }
    reaction_event(&mut ws, idx, m, caller, &name, false);
    Ok(Map::new())
}

fn conversations_invite(ctx: &mut Ctx) -> Answer {
    let raw = ctx.args.str("channel").unwrap_or_default();
    let users = ctx.args.list("users");
    if users.is_empty() {
        return Err(ApiError::new("no_user"));
    }
    if users.len() > 1000 {
        return Err(ApiError::new("too_many_users"));
    }
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, false, false)?;
    {
        let ch = &ws.channels[idx];
        if matches!(ch.kind, Kind::Im | Kind::Mpim) {
            return Err(ApiError::new("method_not_supported_for_channel_type"));
        }
        if ch.archived {
            return Err(ApiError::new("is_archived"));
        }
        if !ch.members.contains(caller) {
            return Err(ApiError::new("not_in_channel"));
        }
    }
    for u in &users {
        if u == caller {
            return Err(ApiError::new("cant_invite_self"));
        }
        match ws.user(u) {
            None => return Err(ApiError::new("user_not_found")),
            Some(x) if x.deleted => return Err(ApiError::new("user_is_deleted")),
            Some(_) => {}
        }
        if ws.channels[idx].members.contains(u) {
            return Err(ApiError::new("already_in_channel"));
        }
    }
    for u in &users {
        ws.channels[idx].members.insert(u.clone());
        member_joined(&mut ws, idx, u, Some(caller));
    }
    Ok(fields! {"channel" => ws.channels[idx].to_json(caller)})
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn rich_text_splits_mentions_links_and_text() {
        let b = rich_text_blocks("hi <@U0BOT> see <https://x.io|x> &amp; <#C1>", "abc");
        let els = &b[0]["elements"][0]["elements"];
        assert_eq!(els[0], json!({"type": "text", "text": "hi "}));
        assert_eq!(els[1], json!({"type": "user", "user_id": "U0BOT"}));
        assert_eq!(
            els[3],
            json!({"type": "link", "url": "https://x.io", "text": "x"})
        );
        assert_eq!(els[4], json!({"type": "text", "text": " & "}));
        assert_eq!(els[5], json!({"type": "channel", "channel_id": "C1"}));
        assert_eq!(b[0]["block_id"], "abc");
    }

    #[test]
    fn client_msg_ids_look_like_uuids_and_differ() {
        let a = client_msg_id("1700000000.000100");
        let b = client_msg_id("1700000000.000101");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(
            a.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }

    #[test]
    fn the_mention_prefix_names_the_bot_user() {
        assert_eq!(BOT_MENTION, format!("<@{BOT_USER_ID}"));
    }

    #[test]
    fn emoji_names_with_colons_and_skin_tones() {
        assert!(known_emoji("thumbsup"));
        assert!(known_emoji(":tada:"));
        assert!(known_emoji("wave::skin-tone-3"));
        assert!(!known_emoji("wave::skin-tone-9"));
        assert!(!known_emoji("not_an_emoji_at_all"));
    }

    #[test]
    fn app_mention_only_for_new_messages_from_others() {
        let ev = json!({"type": "message", "user": "U0000001", "text": "<@U0BOT> hi",
                        "ts": "1.1", "channel": "C1", "channel_type": "channel", "event_ts": "1.1"});
        let m = after_message(&ev).unwrap();
        assert_eq!(m["type"], "app_mention");
        assert_eq!(m["channel"], "C1");
        assert!(m.get("channel_type").is_none());
        let mut own = ev.clone();
        own["user"] = json!(BOT_USER_ID);
        assert!(after_message(&own).is_none());
        let mut edit = ev.clone();
        edit["subtype"] = json!("message_changed");
        assert!(after_message(&edit).is_none());
        let mut plain = ev;
        plain["text"] = json!("no mention");
        assert!(after_message(&plain).is_none());
    }
}
