//! Hand-written actions: the ones that are more than one Web API call, or not a Web API call
//! at all. Each takes validated parameters and returns the result JSON; the generic methods go
//! through `run::call_method` instead.

pub mod directory;
pub mod glob;
pub mod invite;
pub mod lookup;
pub mod mentions;
pub mod messaging;
pub mod upload;
pub mod users;
pub mod webhook;

use crate::catalog::{self, Action};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::run::{PageSink, RunOptions, call_method};
use crate::transport::Client;
use serde_json::{Map, Value};

/// Receives streamed items (`-o jsonl`); returns false when the reader went away.
pub type Sink<'a> = Option<&'a mut (dyn FnMut(&Value) -> bool + Send)>;

/// Runs a hand-written action by its st2 entry point.
pub async fn run(
    client: &Client,
    action: &Action,
    params: Map<String, Value>,
    settings: &Settings,
    opts: RunOptions,
    sink: Sink<'_>,
) -> Result<Value> {
    match action.entry_point {
        "post_message.py" | "post_attachment.py" => {
            webhook::post(client, action, &params, settings, opts).await
        }
        "users_filter_by.py" => users::filter_by(client, &params, settings, sink).await,
        "send_invite.py" => invite::invite(client, action, &params, settings).await,
        "files_upload.py" => upload::upload(client, action, &params, settings, opts).await,
        "channel_by_name.py" => lookup::channel_by_name(client, action, &params, settings).await,
        "user_by_email.py" => lookup::user_by_email(client, action, &params, settings).await,
        "team_id.py" => lookup::team_id(client, action, &params, settings).await,
        "send_dm.py" => messaging::send_dm(client, action, params, settings, opts).await,
        "broadcast.py" => messaging::broadcast(client, action, params, settings, opts, sink).await,
        "join_channel.py" => {
            messaging::join_or_leave(client, action, &params, settings, "conversations.join").await
        }
        "leave_channel.py" => {
            messaging::join_or_leave(client, action, &params, settings, "conversations.leave").await
        }
        other => Err(Error::usage(format!(
            "{} ({other}) is not implemented in this build of slackctl",
            action.name
        ))
        .hint("call the underlying Web API methods with `slackctl run <method>` meanwhile")),
    }
}

/// A string parameter, if set and not empty.
pub fn str_param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Calls a catalogued Web API method through the generic path (token choice, encoding,
/// retries, pagination). `args` may carry the calling action's `token` parameter.
pub async fn call(
    client: &Client,
    settings: &Settings,
    method: &str,
    args: Map<String, Value>,
    opts: RunOptions,
    on_page: Option<PageSink<'_>>,
) -> Result<Value> {
    let action = catalog::find(method).ok_or_else(|| {
        Error::failed(format!(
            "{method} is missing from slackctl's catalog; this is a bug"
        ))
    })?;
    call_method(client, action, args, settings, opts, on_page).await
}

/// Arguments for a sub-call: the given pairs plus the action's `token` parameter, if set.
pub fn args_with_token(params: &Map<String, Value>, pairs: Value) -> Map<String, Value> {
    let mut m = match pairs {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(t) = params.get("token") {
        m.insert("token".into(), t.clone());
    }
    m
}

/// A one-shot call (no pagination) with the caller's retry choice.
pub fn once(opts: RunOptions) -> RunOptions {
    RunOptions {
        all: false,
        retry_writes: opts.retry_writes,
    }
}
