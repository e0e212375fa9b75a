//! The external file upload flow: `files.getUploadURLExternal` hands out an upload URL on
//! this server, `POST /upload/v1/<id>` takes the bytes (raw or multipart, no token: the URL
//! is pre-authorised, as on Slack), and `files.completeUploadExternal` shares the file by
//! posting a message. `files.info` reads a file back.

use super::control::{self, Record, Surface};
use super::methods::{fields, resolve};
use super::request::{ApiError, AuthSource, TokenKind, content_type, multipart_parts};
use super::state::{Author, FileRec, Kind, NewMessage, TEAM_ID, Workspace, now_secs};
use super::web_api::Ctx;
use super::{Shared, text_response};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

type Answer = Result<Map<String, Value>, ApiError>;

fn extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn mime_of(ext: &str) -> (&'static str, &'static str) {
    match ext {
        "txt" | "log" => ("text/plain", "Plain Text"),
        "md" => ("text/markdown", "Markdown"),
        "csv" => ("text/csv", "CSV"),
        "json" => ("application/json", "JSON"),
        "html" | "htm" => ("text/html", "HTML"),
        "png" => ("image/png", "PNG"),
        "jpg" | "jpeg" => ("image/jpeg", "JPEG"),
        "gif" => ("image/gif", "GIF"),
        "pdf" => ("application/pdf", "PDF"),
        "zip" => ("application/zip", "Zip"),
        _ => ("application/octet-stream", "Binary"),
    }
}

/// A file object as `files.info` and `files.completeUploadExternal` show it.
pub(crate) fn file_json(ws: &Workspace, f: &FileRec) -> Value {
    let ext = extension(&f.name);
    let (mimetype, pretty) = mime_of(&ext);
    let mut public = Map::new();
    let mut private = Map::new();
    let (mut channels, mut groups, mut ims) = (Vec::new(), Vec::new(), Vec::new());
    for (cid, ts) in &f.shares {
        let Some(ch) = ws.channel_index(cid).map(|i| &ws.channels[i]) else {
            continue;
        };
        let share = json!({
            "ts": ts,
            "channel_name": ch.name,
            "team_id": TEAM_ID,
            "share_user_id": f.user,
            "reply_users": [],
            "reply_users_count": 0,
            "reply_count": 0,
        });
        let (bucket, list) = match ch.kind {
            Kind::Public => (&mut public, &mut channels),
            Kind::Private | Kind::Mpim => (&mut private, &mut groups),
            Kind::Im => (&mut private, &mut ims),
        };
        if let Value::Array(a) = bucket.entry(cid.clone()).or_insert_with(|| json!([])) {
            a.push(share);
        }
        if !list.contains(cid) {
            list.push(cid.clone());
        }
    }
    let mut shares = Map::new();
    if !public.is_empty() {
        shares.insert("public".into(), Value::Object(public));
    }
    if !private.is_empty() {
        shares.insert("private".into(), Value::Object(private));
    }
    let base = &ws.base_url;
    json!({
        "id": f.id,
        "created": f.created,
        "timestamp": f.created,
        "name": f.name,
        "title": f.title,
        "mimetype": mimetype,
        "filetype": if ext.is_empty() { "binary".to_string() } else { ext },
        "pretty_type": pretty,
        "user": f.user,
        "user_team": TEAM_ID,
        "editable": false,
        "size": f.received.unwrap_or(0),
        "mode": "hosted",
        "is_external": false,
        "external_type": "",
        "is_public": !channels.is_empty(),
        "public_url_shared": false,
        "display_as_bot": false,
        "username": "",
        "url_private": format!("{base}/files-pri/{TEAM_ID}-{}/{}", f.id, f.name),
        "url_private_download": format!("{base}/files-pri/{TEAM_ID}-{}/download/{}", f.id, f.name),
        "permalink": format!("{base}/files/{}/{}/{}", f.user, f.id, f.name),
        "channels": channels,
        "groups": groups,
        "ims": ims,
        "shares": shares,
        "comments_count": 0,
        "has_rich_preview": false,
        "file_access": "visible",
    })
}

/// Step 1: reserve a file id and hand out its upload URL.
pub fn get_upload_url_external(ctx: &mut Ctx) -> Answer {
    let filename = ctx.args.str("filename").unwrap_or_default();
    let length = ctx.args.int("length").unwrap_or(-1);
    if filename.is_empty() {
        return Err(ApiError::reject("invalid_arguments", "filename is empty"));
    }
    if length < 0 {
        return Err(ApiError::reject(
            "invalid_arguments",
            "length must be a byte count",
        ));
    }
    if ctx
        .args
        .str("alt_txt")
        .is_some_and(|a| a.chars().count() > 1000)
    {
        return Err(ApiError::new("alt_txt_too_large"));
    }
    let caller = ctx.caller().to_string();
    let mut ws = ctx.lock();
    let id = ws.new_id("F");
    ws.files.insert(
        id.clone(),
        FileRec {
            id: id.clone(),
            name: filename.clone(),
            title: filename,
            length: length as u64,
            received: None,
            user: caller,
            created: now_secs(),
            completed: false,
            shares: Vec::new(),
        },
    );
    Ok(fields! {
        "upload_url" => format!("{}/upload/v1/{id}", ctx.base_url()),
        "file_id" => id,
    })
}

/// Step 3: finish the uploads and share them, one message per conversation.
pub fn complete_upload_external(ctx: &mut Ctx) -> Answer {
    let files = match ctx.args.json("files") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => {
            return Err(ApiError::reject(
                "invalid_arguments",
                "files must be a non-empty JSON array of {id, title}",
            ));
        }
    };
    let mut wanted = Vec::new();
    for f in &files {
        let Some(id) = f.get("id").and_then(Value::as_str) else {
            return Err(ApiError::reject(
                "invalid_arguments",
                "every entry of files needs an id",
            ));
        };
        let title = f.get("title").and_then(Value::as_str).map(String::from);
        wanted.push((id.to_string(), title));
    }
    let mut targets: Vec<String> = ctx.args.text("channel_id").into_iter().collect();
    for c in ctx.args.list("channels") {
        if !targets.contains(&c) {
            targets.push(c);
        }
    }
    let thread_ts = ctx.args.text("thread_ts");
    if thread_ts.is_some() && targets.len() > 1 {
        return Err(ApiError::reject(
            "invalid_arguments",
            "thread_ts needs exactly one channel",
        ));
    }
    let comment = ctx.args.str("initial_comment").unwrap_or_default();
    let blocks = if comment.is_empty() {
        ctx.args.json("blocks")
    } else {
        None
    };
    let caller = ctx.caller();
    let author = if ctx.token == Some(TokenKind::User) {
        Author::User(caller.to_string())
    } else {
        Author::Bot {
            user: Some(caller.to_string()),
            username: None,
        }
    };

    let mut ws = ctx.lock();
    for (id, _) in &wanted {
        match ws.files.get(id) {
            Some(f) if f.received.is_some() && !f.completed => {}
            _ => return Err(ApiError::new("file_not_found")),
        }
    }
    let mut indices = Vec::new();
    for t in &targets {
        let i = resolve(&mut ws, caller, t, false, true)?;
        if ws.channels[i].archived {
            return Err(ApiError::new("is_archived"));
        }
        indices.push(i);
    }
    for (id, title) in &wanted {
        if let Some(f) = ws.files.get_mut(id) {
            f.completed = true;
            if let Some(t) = title {
                f.title = t.clone();
            }
        }
    }
    for &i in &indices {
        // The share is recorded before the message is stored, so the message's file objects
        // already list the channel and the share, as Slack's `file_share` messages do.
        let (key, ts) = ws.next_ts();
        let cid = ws.channels[i].id.clone();
        for (id, _) in &wanted {
            if let Some(f) = ws.files.get_mut(id) {
                f.shares.push((cid.clone(), ts.clone()));
            }
        }
        let objs: Vec<Value> = wanted
            .iter()
            .filter_map(|(id, _)| ws.files.get(id).map(|f| file_json(&ws, f)))
            .collect();
        let mut extra = fields! {
            "subtype" => "file_share",
            "files" => objs,
            "upload" => true,
            "display_as_bot" => false,
        };
        if let Some(b) = &blocks {
            extra.insert("blocks".into(), b.clone());
        }
        let msg = NewMessage {
            author: author.clone(),
            text: comment.clone(),
            extra,
            thread_ts: thread_ts.clone(),
            broadcast: false,
        };
        ws.store_message(i, msg, key, ts);
    }
    let out: Vec<Value> = wanted
        .iter()
        .filter_map(|(id, _)| ws.files.get(id).map(|f| file_json(&ws, f)))
        .collect();
    Ok(fields! {"files" => out})
}

pub fn info(ctx: &mut Ctx) -> Answer {
    let id = ctx.args.str("file").unwrap_or_default();
    let ws = ctx.lock();
    let f = ws
        .files
        .get(&id)
        .filter(|f| f.completed)
        .ok_or_else(|| ApiError::new("file_not_found"))?;
    Ok(fields! {
        "file" => file_json(&ws, f),
        "comments" => json!([]),
        "response_metadata" => json!({"next_cursor": ""}),
    })
}

/// Counts the file bytes of an upload: the file parts of a multipart body (every part when
/// none is marked as a file), or the whole body otherwise.
fn uploaded_bytes(headers: &HeaderMap, body: &[u8]) -> Result<u64, String> {
    match content_type(headers) {
        Some(ct) if ct.mime == "multipart/form-data" => {
            let parts = ct
                .boundary
                .as_deref()
                .and_then(|b| multipart_parts(body, b))
                .ok_or("multipart body without a readable boundary")?;
            let files: Vec<_> = parts.iter().filter(|p| p.filename.is_some()).collect();
            let n: usize = if files.is_empty() {
                parts.iter().map(|p| p.data.len()).sum()
            } else {
                files.iter().map(|p| p.data.len()).sum()
            };
            Ok(n as u64)
        }
        _ => Ok(body.len() as u64),
    }
}

/// Step 2: `POST /upload/v1/<id>`. Answers `OK - <bytes>` like Slack's file servers.
pub async fn upload(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut rec = Record::new(uri.path(), "POST", ct);
    rec.raw_body = format!("[{} bytes]", body.len());
    if let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        rec.auth = AuthSource::Bearer;
        let token = h.split_once(' ').map_or(h, |(_, t)| t.trim());
        rec.token_kind = Some(TokenKind::classify(token).map_or("unknown", TokenKind::log_name));
        rec.notes
            .push("token sent to the upload URL, which needs none".into());
    }
    let mut rec = match control::injected(&shared, uri.path(), rec, Surface::Text).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (status, text) = match uploaded_bytes(&headers, &body) {
        Err(why) => {
            rec.rejected = Some(why);
            (400, "invalid_form_data".to_string())
        }
        Ok(n) => {
            let mut ws = shared.lock();
            match ws.files.get_mut(&id) {
                None => (404, "file_not_found".to_string()),
                Some(f) if f.completed => (400, "file_already_completed".to_string()),
                Some(f) => {
                    if n != f.length {
                        rec.notes.push(format!(
                            "received {n} bytes but files.getUploadURLExternal announced {}",
                            f.length
                        ));
                    }
                    f.received = Some(n);
                    (200, format!("OK - {n}"))
                }
            }
        }
    };
    rec.status = status;
    if status != 200 {
        rec.error = Some(text.clone());
    }
    rec.args.insert("bytes".into(), json!(body.len()));
    shared.log.push(rec);
    text_response(status, text)
}
