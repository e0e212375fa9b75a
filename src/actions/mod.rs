//! Hand-written actions: the ones that are more than one Web API call, or not a Web API call
//! at all. Each takes validated parameters and returns the result JSON; the generic methods go
//! through `run::call_method` instead.

pub mod glob;
pub mod users;
pub mod webhook;

use crate::catalog::Action;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::run::RunOptions;
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
