//! Methods whose answers carry objects on Slack, where a bare `ok: true` would leave a client
//! reading `None`: `chat.scheduleMessage`, `views.open` / `push` / `update` / `publish`,
//! `bots.info` and the one-step `files.upload` (retired by Slack in favour of the external
//! upload flow, still called by older apps). `pins.add`, `chat.unfurl` and
//! `users.setPresence` answer a bare `ok: true` on Slack too, but only after Slack's checks,
//! which they make here (the message being there, `already_pinned`, a valid presence, ...).

use super::blocks::{self, Surface};
use super::files;
use super::methods::{fields, resolve};
use super::request::ApiError;
use super::state::{
    APP_ID, Author, BOT_ID, BOT_NAME, BOT_USER_ID, FileRec, NewMessage, TEAM_ID, now_secs,
};
use super::web_api::{Ctx, Handler};
use serde_json::{Map, Value, json};

type Answer = Result<Map<String, Value>, ApiError>;

pub fn handler(method: &str) -> Option<Handler> {
    let h: Handler = match method {
        "chat.scheduleMessage" => chat_schedule_message,
        "chat.scheduledMessages.list" => chat_scheduled_messages_list,
        "chat.deleteScheduledMessage" => chat_delete_scheduled_message,
        "views.open" | "views.push" | "views.update" | "views.publish" => views,
        "bots.info" => bots_info,
        "pins.add" => pins_add,
        "chat.unfurl" => chat_unfurl,
        "users.setPresence" => users_set_presence,
        "files.upload" => files_upload,
        _ => return None,
    };
    Some(h)
}

/// Slack schedules at most 120 days ahead.
const SCHEDULE_HORIZON_SECS: u64 = 120 * 86_400;

fn chat_schedule_message(ctx: &mut Ctx) -> Answer {
    let raw = ctx.args.str("channel").unwrap_or_default();
    let post_at = ctx
        .args
        .int("post_at")
        .or_else(|| {
            // Clients also send a float (`time.time() + 60`); Slack truncates it.
            ctx.args
                .str("post_at")
                .and_then(|s| s.parse::<f64>().ok())
                .map(|f| f as i64)
        })
        .ok_or_else(|| ApiError::new("invalid_time"))?;
    let now = now_secs() as i64;
    if post_at <= now {
        return Err(ApiError::new("time_in_past"));
    }
    if post_at - now > SCHEDULE_HORIZON_SECS as i64 {
        return Err(ApiError::new("time_too_far"));
    }
    let text = ctx.args.str("text").unwrap_or_default();
    let block_arg = ctx.args.json("blocks");
    if let Some(b) = &block_arg {
        blocks::check(b, "/blocks", Surface::Message)?;
    }
    if text.is_empty() && block_arg.is_none() && ctx.args.json("attachments").is_none() {
        return Err(ApiError::new("no_text"));
    }
    let caller = ctx.caller();
    let is_bot = ctx.is_bot();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, true, true)?;
    if ws.channels[idx].archived {
        return Err(ApiError::new("is_archived"));
    }
    let id = ws.new_id("Q");
    let channel = ws.channels[idx].id.clone();
    let mut message = json!({
        "type": "delayed_message",
        "text": text,
        "user": caller,
        "team": TEAM_ID,
    });
    if is_bot {
        message["bot_id"] = json!(BOT_ID);
        message["app_id"] = json!(APP_ID);
        message["bot_profile"] = json!({"id": BOT_ID, "app_id": APP_ID, "name": BOT_NAME,
                                        "deleted": false, "team_id": TEAM_ID});
    }
    if let Some(b) = block_arg {
        message["blocks"] = b;
    }
    let thread_ts = ctx.args.text("thread_ts");
    if let Some(t) = &thread_ts {
        message["thread_ts"] = json!(t);
    }
    let mut extra = Map::new();
    if let Some(b) = message.get("blocks") {
        extra.insert("blocks".into(), b.clone());
    }
    ws.scheduled.push(Scheduled {
        id: id.clone(),
        channel_idx: idx,
        post_at: post_at as u64,
        date_created: now as u64,
        text: text.clone(),
        extra,
        author: if is_bot {
            Author::Bot {
                user: Some(caller.to_string()),
                username: None,
            }
        } else {
            Author::User(caller.to_string())
        },
        thread_ts,
    });
    Ok(fields! {
        "channel" => channel,
        "scheduled_message_id" => id,
        "post_at" => post_at,
        "message" => message,
    })
}

/// The view object Slack answers with: the submitted view plus its ids and state.
fn views(ctx: &mut Ctx) -> Answer {
    let view = ctx
        .args
        .json("view")
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::reject("invalid_arguments", "view must be a JSON object"))?;
    blocks::check_view(&view)?;
    let mut ws = ctx.lock();
    let id = match ctx.args.text("view_id") {
        Some(v) => v,
        None => ws.new_id("V"),
    };
    let hash = format!("{}.{}", now_secs(), ws.new_id("h"));
    drop(ws);
    let mut out = json!({
        "id": id,
        "team_id": TEAM_ID,
        "type": view["type"],
        "blocks": view["blocks"],
        "private_metadata": view.get("private_metadata").cloned().unwrap_or(json!("")),
        "callback_id": view.get("callback_id").cloned().unwrap_or(json!("")),
        "state": {"values": {}},
        "hash": hash,
        "title": view.get("title").cloned().unwrap_or(Value::Null),
        "clear_on_close": view.get("clear_on_close").cloned().unwrap_or(json!(false)),
        "notify_on_close": view.get("notify_on_close").cloned().unwrap_or(json!(false)),
        "close": view.get("close").cloned().unwrap_or(Value::Null),
        "submit": view.get("submit").cloned().unwrap_or(Value::Null),
        "previous_view_id": Value::Null,
        "root_view_id": id,
        "app_id": APP_ID,
        "external_id": view.get("external_id").cloned()
            .or_else(|| ctx.args.text("external_id").map(Value::from))
            .unwrap_or(json!("")),
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    });
    if view["type"] == "home" {
        out["title"] = Value::Null;
    }
    Ok(fields! {"view" => out})
}

fn bots_info(ctx: &mut Ctx) -> Answer {
    let wanted = ctx.args.text("bot").unwrap_or_else(|| BOT_ID.to_string());
    if wanted != BOT_ID {
        return Err(ApiError::new("bot_not_found"));
    }
    Ok(fields! {"bot" => json!({
        "id": BOT_ID,
        "deleted": false,
        "name": BOT_NAME,
        "updated": 1_700_000_000u64,
        "app_id": APP_ID,
        "user_id": BOT_USER_ID,
        "icons": {
            "image_36": "https://example.com/bot-36.png",
            "image_48": "https://example.com/bot-48.png",
            "image_72": "https://example.com/bot-72.png",
        },
    })})
}

fn pins_add(ctx: &mut Ctx) -> Answer {
    let raw = ctx.args.str("channel").unwrap_or_default();
    let ts = ctx
        .args
        .text("timestamp")
        .ok_or_else(|| ApiError::new("no_item_specified"))?;
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, false, false)?;
    let ch = &mut ws.channels[idx];
    if !ch.members.contains(caller) {
        return Err(ApiError::new("not_in_channel"));
    }
    let id = ch.id.clone();
    let m = ch
        .find(&ts)
        .ok_or_else(|| ApiError::new("message_not_found"))?;
    let data = &mut ch.messages[m].data;
    let pinned = data.entry("pinned_to").or_insert_with(|| json!([]));
    if let Value::Array(a) = pinned {
        if a.iter().any(|c| c == &json!(id)) {
            return Err(ApiError::new("already_pinned"));
        }
        a.push(json!(id));
    }
    Ok(Map::new())
}

fn chat_unfurl(ctx: &mut Ctx) -> Answer {
    let unfurls = match ctx.args.has("unfurls") {
        false => return Err(ApiError::new("missing_unfurls")),
        true => ctx
            .args
            .json("unfurls")
            .filter(Value::is_object)
            .ok_or_else(|| ApiError::new("invalid_unfurls_format"))?,
    };
    for (url, u) in unfurls.as_object().into_iter().flatten() {
        if let Some(b) = u.get("blocks") {
            let at = format!(
                "/unfurls/{}/blocks",
                url.replace('~', "~0").replace('/', "~1")
            );
            blocks::check(b, &at, Surface::Message)?;
        }
    }
    let ts = ctx.args.text("ts");
    let raw = ctx.args.text("channel");
    if let (Some(raw), Some(ts)) = (raw, ts) {
        let caller = ctx.caller();
        let mut ws = ctx.lock();
        let idx = resolve(&mut ws, caller, &raw, false, false)?;
        if ws.channels[idx].find(&ts).is_none() {
            return Err(ApiError::new("cannot_find_message"));
        }
    } else if ctx.args.text("unfurl_id").is_none() {
        return Err(ApiError::new("invalid_arguments"));
    }
    Ok(Map::new())
}

fn users_set_presence(ctx: &mut Ctx) -> Answer {
    match ctx.args.str("presence").as_deref() {
        Some("auto" | "away") => Ok(Map::new()),
        _ => Err(ApiError::new("invalid_presence")),
    }
}

/// The one-step upload: `content` (text) or a multipart `file`, shared into `channels` with
/// a `file_share` message each; answers the `file` object.
fn files_upload(ctx: &mut Ctx) -> Answer {
    // A multipart file part reaches handlers as `[file <name>: <n> bytes]`.
    let (length, part_name) = match (ctx.args.str("content"), ctx.args.str("file")) {
        (Some(c), _) => (c.len() as u64, None),
        (None, Some(f)) => {
            let inner = f
                .strip_prefix("[file ")
                .and_then(|r| r.strip_suffix(" bytes]"));
            match inner.and_then(|i| i.rsplit_once(": ")) {
                Some((name, n)) => (n.parse().unwrap_or(0), Some(name.to_string())),
                None => return Err(ApiError::new("no_file_data")),
            }
        }
        (None, None) => return Err(ApiError::new("no_file_data")),
    };
    let name = ctx
        .args
        .text("filename")
        .or(part_name)
        .unwrap_or_else(|| "-.txt".to_string());
    let title = ctx.args.text("title").unwrap_or_else(|| name.clone());
    let comment = ctx.args.str("initial_comment").unwrap_or_default();
    let thread_ts = ctx.args.text("thread_ts");
    let channels = ctx.args.list("channels");
    let caller = ctx.caller();
    let author = if ctx.is_bot() {
        Author::Bot {
            user: Some(caller.to_string()),
            username: None,
        }
    } else {
        Author::User(caller.to_string())
    };
    let mut ws = ctx.lock();
    let mut targets = Vec::new();
    for c in &channels {
        let i = resolve(&mut ws, caller, c, false, true)?;
        if ws.channels[i].archived {
            return Err(ApiError::new("is_archived"));
        }
        targets.push(i);
    }
    let id = ws.new_id("F");
    ws.files.insert(
        id.clone(),
        FileRec {
            id: id.clone(),
            name,
            title,
            length,
            received: Some(length),
            user: caller.to_string(),
            created: now_secs(),
            completed: true,
            shares: Vec::new(),
        },
    );
    for i in targets {
        let (key, ts) = ws.next_ts();
        let cid = ws.channels[i].id.clone();
        if let Some(f) = ws.files.get_mut(&id) {
            f.shares.push((cid, ts.clone()));
        }
        let obj = ws.files.get(&id).map(|f| files::file_json(&ws, f));
        let msg = NewMessage {
            author: author.clone(),
            text: comment.clone(),
            extra: fields! {"subtype" => "file_share", "files" => [obj], "upload" => true},
            thread_ts: thread_ts.clone(),
            broadcast: false,
        };
        ws.store_message(i, msg, key, ts);
    }
    let file = ws.files.get(&id).map(|f| files::file_json(&ws, f));
    Ok(fields! {"file" => file})
}

/// A message waiting for its `post_at`.
pub struct Scheduled {
    id: String,
    channel_idx: usize,
    post_at: u64,
    date_created: u64,
    text: String,
    extra: Map<String, Value>,
    author: Author,
    thread_ts: Option<String>,
}

/// Posts scheduled messages once their time has come (checked every 200 ms). Ends with the
/// emulator.
pub fn spawn_scheduler(shared: std::sync::Arc<super::Shared>) {
    let mut stop = shared.sockets.subscribe_stop();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let mut ws = shared.lock();
            if ws.scheduled.is_empty() {
                continue;
            }
            let now = now_secs();
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut ws.scheduled)
                .into_iter()
                .partition(|s| s.post_at <= now);
            ws.scheduled = later;
            for s in due {
                let msg = NewMessage {
                    author: s.author,
                    text: s.text,
                    extra: s.extra,
                    thread_ts: s.thread_ts,
                    broadcast: false,
                };
                ws.post_message(s.channel_idx, msg);
            }
        }
    });
}

fn chat_scheduled_messages_list(ctx: &mut Ctx) -> Answer {
    let wanted = ctx.args.text("channel");
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    let only = match wanted {
        Some(raw) => Some(resolve(&mut ws, caller, &raw, false, false)?),
        None => None,
    };
    let mut items: Vec<Value> = ws
        .scheduled
        .iter()
        .filter(|s| only.is_none_or(|i| i == s.channel_idx))
        .map(|s| {
            json!({
                "id": s.id,
                "channel_id": ws.channels[s.channel_idx].id,
                "post_at": s.post_at,
                "date_created": s.date_created,
                "text": s.text,
            })
        })
        .collect();
    items.sort_by_key(|v| v["post_at"].as_u64());
    let (page, next) = ctx.page("scheduled", &items)?;
    Ok(fields! {
        "scheduled_messages" => page,
        "response_metadata" => json!({"next_cursor": next}),
    })
}

fn chat_delete_scheduled_message(ctx: &mut Ctx) -> Answer {
    let raw = ctx.args.str("channel").unwrap_or_default();
    let id = ctx.args.str("scheduled_message_id").unwrap_or_default();
    let caller = ctx.caller();
    let mut ws = ctx.lock();
    let idx = resolve(&mut ws, caller, &raw, false, false)?;
    let pos = ws
        .scheduled
        .iter()
        .position(|s| s.id == id && s.channel_idx == idx)
        .ok_or_else(|| ApiError::new("invalid_scheduled_message_id"))?;
    ws.scheduled.remove(pos);
    Ok(Map::new())
}
