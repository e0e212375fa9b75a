//! Stateful Web API methods: chat, conversations, users, team, reactions and invites.
//!
//! Each handler runs after the pipeline in `web_api.rs` has checked the token and the
//! argument spelling, so it only deals with workspace state. Handlers are synchronous and
//! take the workspace lock for their whole (short) run.

use super::files;
use super::request::{ApiError, TokenKind};
use super::socket::Kind as SocketKind;
use super::state::{
    APP_ID, Author, BOT_ID, BOT_USER_ID, Kind, NewMessage, TEAM_DOMAIN, TEAM_ID, TEAM_NAME,
    Workspace, now_secs, parse_ts,
};
use super::web_api::{Ctx, Handler, decode_cursor, encode_cursor};
use serde_json::{Map, Value, json};

/// The handler for a method, when it has one; others get a generic `ok: true`.
pub fn handler(method: &str) -> Option<Handler> {
    let h: Handler = match method {
        "api.test" => api_test,
        "auth.test" => auth_test,
        "apps.connections.open" => apps_connections_open,
        "rtm.connect" | "rtm.start" => rtm_connect,
        "chat.postMessage" => chat_post_message,
        "chat.update" => chat_update,
        "chat.delete" => chat_delete,
        "chat.postEphemeral" => chat_post_ephemeral,
        "chat.getPermalink" => chat_get_permalink,
        "conversations.list" => conversations_list,
        "conversations.info" => conversations_info,
        "conversations.history" => conversations_history,
        "conversations.replies" => conversations_replies,
        "conversations.members" => conversations_members,
        "conversations.open" => conversations_open,
        "conversations.join" => conversations_join,
        "conversations.leave" => conversations_leave,
        "conversations.create" => conversations_create,
        "conversations.archive" => conversations_archive,
        "conversations.setTopic" => conversations_set_topic,
        "users.list" => users_list,
        "users.info" => users_info,
        "users.lookupByEmail" => users_lookup_by_email,
        "users.conversations" => users_conversations,
        "users.profile.get" => users_profile_get,
        "team.info" => team_info,
        "reactions.add" => reactions_add,
        "users.admin.invite" => users_admin_invite,
        "admin.users.invite" => admin_users_invite,
        "files.getUploadURLExternal" => files::get_upload_url_external,
        "files.completeUploadExternal" => files::complete_upload_external,
        "files.info" => files::info,
        // Methods added for Slack-app conformance live in their own modules.
        _ => {
            return super::slack_events::handler(method)
                .or_else(|| super::responses::handler(method));
        }
    };
    Some(h)
}

type Answer = Result<Map<String, Value>, ApiError>;

/// Builds an answer map from `key => value` pairs.
macro_rules! fields {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = Map::new();
        $(m.insert(String::from($k), serde_json::to_value(&$v).unwrap_or(Value::Null));)*
        m
    }};
}
pub(crate) use fields;

/// Resolves a conversation argument to a channel index, as the caller can see it.
///
/// `names` also accepts `#name` and bare names (chat.postMessage does); `dm` also accepts a
/// user id and opens the DM with that user (chat.postMessage, files sharing). Private
/// conversations the caller is not in are reported as `channel_not_found`, as Slack does.
pub fn resolve(
    ws: &mut Workspace,
    caller: &str,
    raw: &str,
    names: bool,
    dm: bool,
) -> Result<usize, ApiError> {
    let idx = if let Some(i) = ws.channel_index(raw) {
        Some(i)
    } else if dm && (raw.starts_with('U') || raw.starts_with('W')) && ws.user(raw).is_some() {
        let id = ws.open_direct(&[caller.to_string(), raw.to_string()]);
        ws.channel_index(&id)
    } else if names {
        ws.channel_by_name(raw.strip_prefix('#').unwrap_or(raw))
    } else {
        None
    };
    let i = idx.ok_or_else(|| ApiError::new("channel_not_found"))?;
    let ch = &ws.channels[i];
    if ch.kind != Kind::Public && !ch.members.contains(caller) {
        return Err(ApiError::new("channel_not_found"));
    }
    Ok(i)
}

fn channel_arg(ctx: &Ctx, name: &str) -> String {
    ctx.args.str(name).unwrap_or_default()
}

fn author(ctx: &Ctx) -> Author {
    if ctx.token == Some(TokenKind::User) {
        Author::User(ctx.caller().to_string())
    } else {
        Author::Bot {
            user: Some(BOT_USER_ID.to_string()),
            username: ctx.args.text("username"),
        }
    }
}

/// Longest `text` Slack keeps; longer texts are cut and flagged `message_truncated`.
const MAX_TEXT: usize = 40_000;

/// Text and structured content of a message (shared by post, update and ephemeral).
fn content(ctx: &mut Ctx) -> Result<(String, Map<String, Value>), ApiError> {
    let mut text = ctx
        .args
        .str("text")
        .or_else(|| ctx.args.str("markdown_text"))
        .unwrap_or_default();
    if text.chars().count() > MAX_TEXT {
        text = text.chars().take(MAX_TEXT).collect();
        ctx.warnings.push("message_truncated");
    }
    let mut extra = Map::new();
    if let Some(blocks) = ctx.args.json("blocks") {
        super::blocks::check(&blocks, "/blocks", super::blocks::Surface::Message)?;
        extra.insert("blocks".into(), blocks);
    } else if let Some(md) = ctx.args.text("markdown_text") {
        extra.insert("blocks".into(), json!([{"type": "markdown", "text": md}]));
    }
    if let Some(att) = ctx.args.json("attachments") {
        if !att.is_array() {
            return Err(ApiError::reject(
                "invalid_attachments",
                "attachments must be a JSON array",
            ));
        }
        extra.insert("attachments".into(), att);
    }
    if let Some(meta) = ctx.args.json("metadata") {
        if !meta.is_object() {
            return Err(ApiError::reject(
                "invalid_metadata_format",
                "metadata must be a JSON object",
            ));
        }
        extra.insert("metadata".into(), meta);
    }
    if ctx.is_bot() {
        let mut icons = Map::new();
        if let Some(e) = ctx.args.text("icon_emoji") {
            icons.insert("emoji".into(), json!(e));
        }
        if let Some(u) = ctx.args.text("icon_url") {
            icons.insert("image_64".into(), json!(u));
        }
        if !icons.is_empty() {
            extra.insert("icons".into(), Value::Object(icons));
        }
    }
    Ok((text, extra))
}

/// May the caller change or delete this message?
fn owns(ctx: &Ctx, msg: &Map<String, Value>) -> bool {
    let user = msg.get("user").and_then(Value::as_str);
    let bot = msg.get("bot_id").and_then(Value::as_str);
    user == Some(ctx.caller()) || (ctx.is_bot() && bot == Some(BOT_ID))
}

// ---- api, auth, connections ---------------------------------------------------------------

fn api_test(ctx: &mut Ctx) -> Answer {
    let mut args = ctx.args.0.clone();
    args.remove("token");
    if let Some(e) = ctx.args.text("error") {
        return Err(ApiError::new(&e).with("args", Value::Object(args)));
    }
    Ok(fields! {"args" => args})
}

fn auth_test(ctx: &mut Ctx) -> Answer {
    let ws = ctx.lock();
    let user = ws
        .user(ctx.caller())
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let mut m = fields! {
        "url" => format!("{}/", ctx.base_url()),
        "team" => TEAM_NAME,
        "user" => user,
        "team_id" => TEAM_ID,
        "user_id" => ctx.caller(),
    };
    if ctx.is_bot() {
        m.insert("bot_id".into(), json!(BOT_ID));
    }
    m.insert("is_enterprise_install".into(), json!(false));
    Ok(m)
}

fn ws_url(ctx: &Ctx, path: &str, kind: SocketKind) -> String {
    let host = ctx.base_url().trim_start_matches("http://");
    let ticket = ctx.lock().new_id("");
    ctx.issue_ticket(&ticket, kind);
    format!("ws://{host}/{path}?ticket={ticket}")
}

fn apps_connections_open(ctx: &mut Ctx) -> Answer {
    let url = format!(
        "{}&app_id={APP_ID}",
        ws_url(ctx, "link/", SocketKind::Socket)
    );
    Ok(fields! {"url" => url})
}

fn rtm_connect(ctx: &mut Ctx) -> Answer {
    let url = ws_url(ctx, "websocket/", SocketKind::Rtm);
    let ws = ctx.lock();
    let name = ws
        .user(ctx.caller())
        .map(|u| u.name.clone())
        .unwrap_or_default();
    Ok(fields! {
        "url" => url,
        "team" => json!({"id": TEAM_ID, "name": TEAM_NAME, "domain": TEAM_DOMAIN}),
        "self" => json!({"id": ctx.caller(), "name": name}),
    })
}

// ---- chat ---------------------------------------------------------------------------------

fn chat_post_message(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let (text, extra) = content(ctx)?;
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, true, true)?;
    if ws.channels[idx].archived {
        return Err(ApiError::new("is_archived"));
    }
    super::membership::may_post(ctx, &ws, idx)?;
    let msg = NewMessage {
        author: author(ctx),
        text,
        extra,
        thread_ts: ctx.args.text("thread_ts"),
        broadcast: ctx.args.bool("reply_broadcast").unwrap_or(false),
    };
    let stored = ws.post_message(idx, msg);
    Ok(fields! {
        "channel" => ws.channels[idx].id,
        "ts" => stored["ts"],
        "message" => stored,
    })
}

fn chat_update(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let ts = ctx.args.str("ts").unwrap_or_default();
    let (text, extra) = content(ctx)?;
    let touches_text = ctx.args.has("text") || ctx.args.has("markdown_text");
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, false, false)?;
    let m = ws.channels[idx]
        .find(&ts)
        .ok_or_else(|| ApiError::new("message_not_found"))?;
    if !owns(ctx, &ws.channels[idx].messages[m].data) {
        return Err(ApiError::new("cant_update_message"));
    }
    let (_, edited_ts) = ws.next_ts();
    let id = ws.channels[idx].id.clone();
    let previous = ws.channels[idx].messages[m].to_json();
    let data = &mut ws.channels[idx].messages[m].data;
    if touches_text {
        data.insert("text".into(), json!(text));
    }
    for (k, v) in extra {
        data.insert(k, v);
    }
    data.insert(
        "edited".into(),
        json!({"user": ctx.caller(), "ts": edited_ts}),
    );
    let message = Value::Object(data.clone());
    // Slack announces an edit as a hidden message_changed event with both versions.
    ws.announce(
        idx,
        json!({
            "type": "message",
            "subtype": "message_changed",
            "hidden": true,
            "message": message,
            "previous_message": previous,
            "ts": edited_ts,
            "event_ts": edited_ts,
        }),
    );
    Ok(fields! {
        "channel" => id,
        "ts" => ts,
        "text" => message["text"],
        "message" => message,
    })
}

fn chat_delete(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let ts = ctx.args.str("ts").unwrap_or_default();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, false, false)?;
    let m = ws.channels[idx]
        .find(&ts)
        .ok_or_else(|| ApiError::new("message_not_found"))?;
    // Admins (the user token) may delete anyone's message; others only their own.
    if ctx.token != Some(TokenKind::User) && !owns(ctx, &ws.channels[idx].messages[m].data) {
        return Err(ApiError::new("cant_delete_message"));
    }
    let (_, event_ts) = ws.next_ts();
    let ch = &mut ws.channels[idx];
    let removed = ch.messages.remove(m);
    let previous = removed.to_json();
    if let Some(root) = removed.thread_ts().filter(|t| *t != removed.ts)
        && let Some(r) = ch.find(root)
    {
        let parent = &mut ch.messages[r].data;
        let count = parent
            .get("reply_count")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        parent.insert("reply_count".into(), json!(count.saturating_sub(1)));
    }
    let id = ch.id.clone();
    ws.announce(
        idx,
        json!({
            "type": "message",
            "subtype": "message_deleted",
            "hidden": true,
            "deleted_ts": ts,
            "previous_message": previous,
            "ts": event_ts,
            "event_ts": event_ts,
        }),
    );
    Ok(fields! {"channel" => id, "ts" => ts})
}

fn chat_post_ephemeral(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let user = ctx.args.str("user").unwrap_or_default();
    let (_text, _extra) = content(ctx)?;
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, true, false)?;
    if ws.user(&user).is_none() {
        return Err(ApiError::new("user_not_found"));
    }
    if ws.channels[idx].archived {
        return Err(ApiError::new("is_archived"));
    }
    if !ws.channels[idx].members.contains(&user) {
        return Err(ApiError::new("user_not_in_channel"));
    }
    // Ephemeral messages are shown once and never stored.
    let (_, ts) = ws.next_ts();
    Ok(fields! {"message_ts" => ts})
}

fn chat_get_permalink(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let ts = ctx.args.str("message_ts").unwrap_or_default();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, false, false)?;
    let ch = &ws.channels[idx];
    let m = ch
        .find(&ts)
        .ok_or_else(|| ApiError::new("message_not_found"))?;
    let mut link = format!(
        "{}/archives/{}/p{}",
        ctx.base_url(),
        ch.id,
        ts.replace('.', "")
    );
    if let Some(root) = ch.messages[m].thread_ts().filter(|t| *t != ts) {
        link.push_str(&format!("?thread_ts={root}&cid={}", ch.id));
    }
    Ok(fields! {"channel" => ch.id, "permalink" => link})
}

// ---- conversations ------------------------------------------------------------------------

/// The `types` filter. Unknown entries (often `" private_channel"` after a comma and a space)
/// are skipped silently, as Slack does; the log notes them.
fn types_arg(ctx: &mut Ctx) -> Result<Vec<Kind>, ApiError> {
    let Some(raw) = ctx.args.text("types") else {
        return Ok(vec![Kind::Public]);
    };
    let mut kinds = Vec::new();
    for t in raw.split(',') {
        match Kind::from_type_name(t) {
            Some(k) => kinds.push(k),
            None => ctx.notes.push(format!(
                "types entry `{t}` is not a conversation type; ignored"
            )),
        }
    }
    if kinds.is_empty() {
        return Err(ApiError::new("invalid_types"));
    }
    Ok(kinds)
}

fn list_channels(ctx: &mut Ctx, member: Option<&str>) -> Answer {
    let kinds = types_arg(ctx)?;
    let exclude_archived = ctx.args.bool("exclude_archived").unwrap_or(false);
    let caller = ctx.caller();
    let ws = ctx.lock();
    let picked: Vec<usize> = ws
        .channels
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            kinds.contains(&c.kind)
                && (c.kind == Kind::Public || c.members.contains(caller))
                && !(exclude_archived && c.archived)
                && member.is_none_or(|u| c.members.contains(u))
        })
        .map(|(i, _)| i)
        .collect();
    let (page, next) = ctx.page("channel", &picked)?;
    let channels: Vec<Value> = page
        .iter()
        .map(|&i| ws.channels[i].to_json(caller))
        .collect();
    Ok(fields! {
        "channels" => channels,
        "response_metadata" => json!({"next_cursor": next}),
    })
}

fn conversations_list(ctx: &mut Ctx) -> Answer {
    list_channels(ctx, None)
}

fn users_conversations(ctx: &mut Ctx) -> Answer {
    let user = ctx
        .args
        .text("user")
        .unwrap_or_else(|| ctx.caller().to_string());
    if ctx.lock().user(&user).is_none() {
        return Err(ApiError::new("user_not_found"));
    }
    list_channels(ctx, Some(&user))
}

fn conversations_info(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, false, false)?;
    Ok(fields! {"channel" => ws.channels[idx].to_json(ctx.caller())})
}

fn ts_bound(ctx: &Ctx, name: &str, error: &str) -> Result<Option<u64>, ApiError> {
    match ctx.args.text(name) {
        None => Ok(None),
        Some(s) => parse_ts(&s).map(Some).ok_or_else(|| ApiError::new(error)),
    }
}

fn conversations_history(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let inclusive = ctx.args.bool("inclusive").unwrap_or(false);
    let latest = ts_bound(ctx, "latest", "invalid_ts_latest")?;
    let oldest = ts_bound(ctx, "oldest", "invalid_ts_oldest")?;
    // The cursor names the last ts already returned; the next page starts just below it.
    let after_cursor = match ctx.args.text("cursor") {
        None => None,
        Some(c) => Some(
            decode_cursor(&c, "next_ts")
                .and_then(|k| k.parse::<u64>().ok())
                .ok_or_else(|| ApiError::new("invalid_cursor"))?,
        ),
    };
    let limit = ctx.limit();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, false, false)?;
    super::membership::may_read(ctx, &ws, idx)?;
    let msgs = &ws.channels[idx].messages;
    let hi = match (after_cursor, latest) {
        (Some(k), _) => msgs.partition_point(|m| m.key < k),
        (None, Some(k)) if inclusive => msgs.partition_point(|m| m.key <= k),
        (None, Some(k)) => msgs.partition_point(|m| m.key < k),
        (None, None) => msgs.len(),
    };
    let above_oldest = |key: u64| match oldest {
        None => true,
        Some(o) if inclusive => key >= o,
        Some(o) => key > o,
    };
    let mut out = Vec::new();
    let mut has_more = false;
    for m in msgs[..hi].iter().rev() {
        if !above_oldest(m.key) {
            break;
        }
        if !m.in_history() {
            continue;
        }
        if out.len() == limit {
            has_more = true;
            break;
        }
        out.push(m);
    }
    let next = match (has_more, out.last()) {
        (true, Some(m)) => encode_cursor("next_ts", &m.key.to_string()),
        _ => String::new(),
    };
    let messages: Vec<Value> = out.iter().map(|m| m.to_json()).collect();
    Ok(fields! {
        "messages" => messages,
        "has_more" => has_more,
        "pin_count" => 0,
        "channel_actions_ts" => Value::Null,
        "channel_actions_count" => 0,
        "response_metadata" => json!({"next_cursor": next}),
    })
}

fn conversations_replies(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let ts = ctx.args.str("ts").unwrap_or_default();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, false, false)?;
    super::membership::may_read(ctx, &ws, idx)?;
    let ch = &ws.channels[idx];
    let m = ch
        .find(&ts)
        .ok_or_else(|| ApiError::new("thread_not_found"))?;
    let root = ch.messages[m].thread_ts().unwrap_or(&ts).to_string();
    let r = ch
        .find(&root)
        .ok_or_else(|| ApiError::new("thread_not_found"))?;
    let thread: Vec<usize> = std::iter::once(r)
        .chain(
            (r + 1..ch.messages.len())
                .filter(|&i| ch.messages[i].thread_ts() == Some(root.as_str())),
        )
        .collect();
    let (page, next) = ctx.page("reply", &thread)?;
    let messages: Vec<Value> = page.iter().map(|&i| ch.messages[i].to_json()).collect();
    Ok(fields! {
        "messages" => messages,
        "has_more" => !next.is_empty(),
        "response_metadata" => json!({"next_cursor": next}),
    })
}

fn conversations_members(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, false, false)?;
    let members: Vec<&String> = ws.channels[idx].members.iter().collect();
    let (page, next) = ctx.page("member", &members)?;
    Ok(fields! {
        "members" => page,
        "response_metadata" => json!({"next_cursor": next}),
    })
}

fn conversations_open(ctx: &mut Ctx) -> Answer {
    let return_im = ctx.args.bool("return_im").unwrap_or(false);
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    if let Some(raw) = ctx.args.text("channel") {
        let idx = resolve(&mut ws, caller, &raw, false, false)?;
        let ch = &ws.channels[idx];
        if !matches!(ch.kind, Kind::Im | Kind::Mpim) {
            return Err(ApiError::new("method_not_supported_for_channel_type"));
        }
        let channel = if return_im {
            ch.to_json(caller)
        } else {
            json!({"id": ch.id})
        };
        return Ok(fields! {"no_op" => true, "already_open" => true, "channel" => channel});
    }
    let users = ctx.args.list("users");
    if users.is_empty() {
        return Err(ApiError::new("users_list_not_supplied"));
    }
    if users.len() > 8 {
        return Err(ApiError::new("too_many_users"));
    }
    for u in &users {
        match ws.user(u) {
            None => return Err(ApiError::new("user_not_found")),
            Some(u) if u.deleted => return Err(ApiError::new("user_disabled")),
            Some(_) => {}
        }
    }
    let mut members = users.clone();
    members.push(caller.to_string());
    let already = ws.has_direct(&members);
    let id = ws.open_direct(&members);
    let channel = match ws.channel_index(&id) {
        Some(i) if return_im => ws.channels[i].to_json(caller),
        _ => json!({"id": id}),
    };
    Ok(fields! {"no_op" => already, "already_open" => already, "channel" => channel})
}

fn conversations_join(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, false, false)?;
    let ch = &mut ws.channels[idx];
    if matches!(ch.kind, Kind::Im | Kind::Mpim) {
        return Err(ApiError::new("method_not_supported_for_channel_type"));
    }
    if ch.archived {
        return Err(ApiError::new("is_archived"));
    }
    if !ch.members.insert(caller.to_string()) {
        ctx.warnings.push("already_in_channel");
    } else {
        super::slack_events::member_joined(&mut ws, idx, caller, None);
    }
    Ok(fields! {"channel" => ws.channels[idx].to_json(caller)})
}

fn conversations_leave(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, false, false)?;
    let ch = &mut ws.channels[idx];
    if ch.kind == Kind::Im {
        return Err(ApiError::new("method_not_supported_for_channel_type"));
    }
    if ch.is_general {
        return Err(ApiError::new("cant_leave_general"));
    }
    if ch.archived {
        return Err(ApiError::new("is_archived"));
    }
    if !ch.members.remove(caller) {
        // Slack answers ok, and says so.
        return Ok(fields! {"not_in_channel" => true});
    }
    Ok(Map::new())
}

fn conversations_create(ctx: &mut Ctx) -> Answer {
    let name = ctx.args.str("name").unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::new("invalid_name_required"));
    }
    if name.chars().count() > 80 {
        return Err(ApiError::new("invalid_name_maxlength"));
    }
    if !name
        .chars()
        .all(|c| c.is_lowercase() || c.is_numeric() || c == '-' || c == '_')
    {
        return Err(ApiError::new("invalid_name_specials"));
    }
    if name.chars().all(|c| c == '-' || c == '_') {
        return Err(ApiError::new("invalid_name_punctuation"));
    }
    let private = ctx.args.bool("is_private").unwrap_or(false);
    let extra_users = ctx.args.list("user_ids");
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    if ws.channel_by_name(&name).is_some() {
        return Err(ApiError::new("name_taken"));
    }
    let idx = ws.create_channel(&name, private, caller);
    for u in extra_users {
        if ws.user(&u).is_some() {
            ws.channels[idx].members.insert(u);
        }
    }
    Ok(fields! {"channel" => ws.channels[idx].to_json(caller)})
}

fn conversations_archive(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, ctx.caller(), &raw, false, false)?;
    let ch = &mut ws.channels[idx];
    if matches!(ch.kind, Kind::Im | Kind::Mpim) {
        return Err(ApiError::new("method_not_supported_for_channel_type"));
    }
    if ch.is_general {
        return Err(ApiError::new("cant_archive_general"));
    }
    if ch.archived {
        return Err(ApiError::new("already_archived"));
    }
    ch.archived = true;
    Ok(Map::new())
}

fn conversations_set_topic(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let topic = ctx.args.str("topic").unwrap_or_default();
    if topic.chars().count() > 250 {
        return Err(ApiError::new("too_long"));
    }
    let caller = ctx.caller();
    let author = author(ctx);
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, false, false)?;
    {
        let ch = &mut ws.channels[idx];
        if ch.archived {
            return Err(ApiError::new("is_archived"));
        }
        if !ch.members.contains(caller) {
            return Err(ApiError::new("not_in_channel"));
        }
        ch.topic = json!({"value": topic, "creator": caller, "last_set": now_secs()});
    }
    // Slack announces topic changes in the channel.
    let msg = NewMessage {
        author,
        text: format!("set the channel topic: {topic}"),
        extra: fields! {"subtype" => "channel_topic", "topic" => topic},
        thread_ts: None,
        broadcast: false,
    };
    ws.post_message(idx, msg);
    Ok(fields! {"channel" => ws.channels[idx].to_json(caller)})
}

// ---- users and team -----------------------------------------------------------------------

fn users_list(ctx: &mut Ctx) -> Answer {
    let ws = ctx.lock();
    let all: Vec<usize> = (0..ws.users.len()).collect();
    let (page, next) = ctx.page("user", &all)?;
    let members: Vec<&Value> = page.iter().map(|&i| &ws.users[i].json).collect();
    Ok(fields! {
        "members" => members,
        "cache_ts" => now_secs(),
        "response_metadata" => json!({"next_cursor": next}),
    })
}

fn users_info(ctx: &mut Ctx) -> Answer {
    let id = ctx.args.str("user").unwrap_or_default();
    let ws = ctx.lock();
    let user = ws
        .user(&id)
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    Ok(fields! {"user" => user.json})
}

fn users_lookup_by_email(ctx: &mut Ctx) -> Answer {
    let email = ctx.args.str("email").unwrap_or_default();
    let ws = ctx.lock();
    let user = ws
        .user_by_email(&email)
        .ok_or_else(|| ApiError::new("users_not_found"))?;
    Ok(fields! {"user" => user.json})
}

fn users_profile_get(ctx: &mut Ctx) -> Answer {
    let id = ctx
        .args
        .text("user")
        .unwrap_or_else(|| ctx.caller().to_string());
    let ws = ctx.lock();
    let user = ws
        .user(&id)
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    Ok(fields! {"profile" => user.json["profile"]})
}

fn team_info(ctx: &mut Ctx) -> Answer {
    if let Some(t) = ctx.args.text("team")
        && t != TEAM_ID
    {
        return Err(ApiError::new("team_not_found"));
    }
    Ok(fields! {"team" => json!({
        "id": TEAM_ID,
        "name": TEAM_NAME,
        "url": format!("{}/", ctx.base_url()),
        "domain": TEAM_DOMAIN,
        "email_domain": "example.com",
        "icon": {"image_default": true, "image_34": "https://example.com/team-34.png", "image_68": "https://example.com/team-68.png"},
        "avatar_base_url": "https://example.com/",
        "is_verified": false,
    })})
}

// ---- reactions ----------------------------------------------------------------------------

fn reactions_add(ctx: &mut Ctx) -> Answer {
    let raw = channel_arg(ctx, "channel");
    let ts = ctx.args.str("timestamp").unwrap_or_default();
    let name = ctx.args.str("name").unwrap_or_default();
    if !super::slack_events::known_emoji(&name) {
        return Err(ApiError::new("invalid_name"));
    }
    let name = name.trim_matches(':').to_string();
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, false, false)?;
    let ch = &mut ws.channels[idx];
    if ch.archived {
        return Err(ApiError::new("is_archived"));
    }
    let m = ch
        .find(&ts)
        .ok_or_else(|| ApiError::new("message_not_found"))?;
    let data = &mut ch.messages[m].data;
    let reactions = data
        .entry("reactions")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| ApiError::new("internal_error"))?;
    match reactions.iter_mut().find(|r| r["name"] == json!(name)) {
        Some(r) => {
            let users = r["users"]
                .as_array_mut()
                .ok_or_else(|| ApiError::new("internal_error"))?;
            if users.iter().any(|u| u == caller) {
                return Err(ApiError::new("already_reacted"));
            }
            users.push(json!(caller));
            let count = users.len();
            r["count"] = json!(count);
        }
        None => reactions.push(json!({"name": name, "users": [caller], "count": 1})),
    }
    super::slack_events::reaction_event(&mut ws, idx, m, caller, &name, true);
    Ok(Map::new())
}

// ---- invites ------------------------------------------------------------------------------

fn valid_email(e: &str) -> bool {
    matches!(e.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !e.contains(char::is_whitespace))
}

/// The legacy, undocumented invite (a legacy admin user token); `channels` is a comma list
/// of channel ids, and a space in it makes Slack look up a channel named " C…".
fn users_admin_invite(ctx: &mut Ctx) -> Answer {
    let email = ctx.args.str("email").unwrap_or_default();
    if !valid_email(&email) {
        return Err(ApiError::new("invalid_email"));
    }
    let channels = ctx.args.list("channels");
    let mut ws = ctx.lock();
    if ws.user_by_email(&email).is_some() {
        return Err(ApiError::new("already_in_team"));
    }
    if ws.invites.iter().any(|i| i["email"] == json!(email)) {
        return Err(ApiError::new("already_invited"));
    }
    if channels.iter().any(|c| ws.channel_index(c).is_none()) {
        return Err(ApiError::new("channel_not_found"));
    }
    ws.invites.push(json!({
        "method": "users.admin.invite",
        "email": email,
        "channels": channels,
        "first_name": ctx.args.str("first_name"),
        "last_name": ctx.args.str("last_name"),
    }));
    Ok(Map::new())
}

/// The Enterprise Grid invite: `team_id`, `email`, `channel_ids` (comma list) are required.
fn admin_users_invite(ctx: &mut Ctx) -> Answer {
    let team = ctx.args.str("team_id").unwrap_or_default();
    let email = ctx.args.str("email").unwrap_or_default();
    let channels = ctx.args.list("channel_ids");
    if team != TEAM_ID {
        return Err(ApiError::new("team_not_found"));
    }
    if !valid_email(&email) {
        return Err(ApiError::new("invalid_email"));
    }
    let mut ws = ctx.lock();
    if ws.user_by_email(&email).is_some() {
        return Err(ApiError::new("already_in_team"));
    }
    if channels.is_empty() || channels.iter().any(|c| ws.channel_index(c).is_none()) {
        return Err(ApiError::new("failed_to_validate_channels"));
    }
    ws.invites.push(json!({
        "method": "admin.users.invite",
        "email": email,
        "channels": channels,
        "team_id": team,
        "real_name": ctx.args.str("real_name"),
    }));
    Ok(Map::new())
}
