//! Sends and memberships by name: `send_dm` (a direct message to an e-mail address),
//! `broadcast` (one message to every channel the token is a member of), and
//! `join_channel` / `leave_channel` (by ID or name).

use super::directory::Directory;
use super::lookup::{explain_lookup, valid_email};
use super::{Sink, args_with_token, call, mentions, once, str_param};
use crate::catalog::Action;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::run::{RunOptions, choose_token};
use crate::transport::Client;
use serde_json::{Map, Value, json};

/// Options for calls that are safe to repeat (opening a DM, joining, leaving): a resend after
/// an ambiguous failure changes nothing, so they retry like reads.
fn repeatable() -> RunOptions {
    RunOptions {
        all: false,
        retry_writes: true,
    }
}

/// The message parameters of a send action, with mentions linked when asked.
async fn message_args(
    dir: &mut Directory<'_>,
    params: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    let mut m = args_with_token(params, json!({}));
    for key in ["text", "blocks"] {
        if let Some(v) = params.get(key) {
            m.insert(key.into(), v.clone());
        }
    }
    if params.get("link_mentions").and_then(Value::as_bool) == Some(true) {
        mentions::link_params(dir, &mut m).await?;
    }
    Ok(m)
}

/// `send_dm`: `users.lookupByEmail` → `conversations.open` → `chat.postMessage`; returns the
/// `chat.postMessage` answer.
pub async fn send_dm(
    client: &Client,
    action: &Action,
    params: Map<String, Value>,
    settings: &Settings,
    opts: RunOptions,
) -> Result<Value> {
    choose_token(action, &params, settings)?;
    let email = valid_email(&params)?.to_string();
    let mut dir = Directory::new(client, settings, &params);
    // Mentions are resolved first: if a lookup fails, nothing has been sent.
    let mut post = message_args(&mut dir, &params).await?;
    let found = call(
        client,
        settings,
        "users.lookupByEmail",
        args_with_token(&params, json!({"email": email})),
        once(opts),
        None,
    )
    .await
    .map_err(|e| explain_lookup(e, &email))?;
    let user = found
        .pointer("/user/id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::failed("users.lookupByEmail answered without a user id"))?;
    let opened = call(
        client,
        settings,
        "conversations.open",
        args_with_token(&params, json!({"users": [user]})),
        repeatable(),
        None,
    )
    .await?;
    let channel = opened
        .pointer("/channel/id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::failed("conversations.open answered without a channel id"))?;
    post.insert("channel".into(), json!(channel));
    call(client, settings, "chat.postMessage", post, once(opts), None).await
}

/// The error code of a failed call: Slack's `error`, else the message.
fn error_code(e: &Error) -> String {
    e.slack_code()
        .map_or_else(|| e.message.clone(), str::to_string)
}

/// `broadcast`: posts the message to every channel the token is a member of
/// (`users.conversations`, public and private, archived ones skipped), one channel after
/// another. Returns `{channel, name, ok, ts | error}` per channel, streamed with `-o jsonl`;
/// any failure makes the run fail (exit 1) after every channel was tried.
pub async fn broadcast(
    client: &Client,
    action: &Action,
    params: Map<String, Value>,
    settings: &Settings,
    opts: RunOptions,
    mut sink: Sink<'_>,
) -> Result<Value> {
    choose_token(action, &params, settings)?;
    let mut dir = Directory::new(client, settings, &params);
    let message = message_args(&mut dir, &params).await?;
    let mut targets: Vec<(String, String)> = Vec::new();
    let mut on_page = |page: &Value, _: &[String]| {
        for c in page
            .get("channels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = c.get("id").and_then(Value::as_str) {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                targets.push((id.to_string(), name.to_string()));
            }
        }
        true
    };
    call(
        client,
        settings,
        "users.conversations",
        args_with_token(
            &params,
            json!({"types": ["public_channel", "private_channel"], "exclude_archived": true}),
        ),
        RunOptions {
            all: true,
            retry_writes: false,
        },
        Some(&mut on_page),
    )
    .await?;
    if targets.is_empty() {
        crate::log::warn(
            "broadcast: the token is not a member of any channel; nothing was posted (invite the bot with /invite @your-bot)",
        );
    }
    let dry_run = params.get("dry_run").and_then(Value::as_bool) == Some(true);
    let mut results: Vec<Value> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for (id, name) in &targets {
        let result = if dry_run {
            json!({"channel": id, "name": name})
        } else {
            let mut post = message.clone();
            post.insert("channel".into(), json!(id));
            match call(client, settings, "chat.postMessage", post, once(opts), None).await {
                Ok(answer) => {
                    json!({"channel": id, "name": name, "ok": true, "ts": answer.get("ts").cloned().unwrap_or(Value::Null)})
                }
                Err(e) => {
                    let code = error_code(&e);
                    failed.push(format!("#{name} ({code})"));
                    json!({"channel": id, "name": name, "ok": false, "error": code})
                }
            }
        };
        match sink.as_deref_mut() {
            // A closed stdout does not stop the broadcast: the posts are the point.
            Some(emit) => {
                emit(&result);
            }
            None => results.push(result),
        }
    }
    let streamed = sink.is_some();
    if !failed.is_empty() {
        let mut e = Error::failed(format!(
            "broadcast failed in {} of {} channels: {}",
            failed.len(),
            targets.len(),
            failed.join(", ")
        ))
        .hint("the other channels got the message; the per-channel results are on stdout");
        if !streamed {
            e = e.with_output(Value::Array(results));
        }
        return Err(e);
    }
    Ok(Value::Array(results))
}

/// `join_channel` / `leave_channel`: `conversations.join` or `conversations.leave` for a
/// channel given by ID or by name; returns Slack's answer.
pub async fn join_or_leave(
    client: &Client,
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
    method: &str,
) -> Result<Value> {
    choose_token(action, params, settings)?;
    let raw = str_param(params, "channel").unwrap_or_default();
    let mut dir = Directory::new(client, settings, params);
    let id = dir.channel_id(raw).await?;
    let answer = call(
        client,
        settings,
        method,
        args_with_token(params, json!({"channel": id})),
        repeatable(),
        None,
    )
    .await?;
    if answer.get("not_in_channel").and_then(Value::as_bool) == Some(true) {
        crate::log::warn(&format!(
            "{}: the token was not a member of {raw}",
            action.name
        ));
    }
    Ok(answer)
}
