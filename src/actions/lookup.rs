//! Lookups by name: `channel_by_name`, `user_by_email` and `team_id`. Each returns the object
//! looked up (not Slack's envelope), so a workflow can use `result.id` directly.

use super::directory::Directory;
use super::{args_with_token, call, str_param};
use crate::catalog::Action;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::run::{RunOptions, choose_token};
use crate::transport::Client;
use serde_json::{Map, Value, json};

const READ: RunOptions = RunOptions {
    all: false,
    retry_writes: false,
};

/// `channel_by_name`: the channel object named `name` (`ops` or `#ops`), from every page of
/// `conversations.list` (public and private channels).
pub async fn channel_by_name(
    client: &Client,
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
) -> Result<Value> {
    choose_token(action, params, settings)?;
    let name = str_param(params, "name").unwrap_or_default();
    if name.trim().trim_start_matches('#').is_empty() {
        return Err(Error::usage(
            "name must be a channel name such as ops or #ops",
        ));
    }
    Directory::new(client, settings, params)
        .channel_by_name(name)
        .await
}

/// `user_by_email`: the user object for an e-mail address (`users.lookupByEmail`).
pub async fn user_by_email(
    client: &Client,
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
) -> Result<Value> {
    choose_token(action, params, settings)?;
    let email = valid_email(params)?;
    let answer = call(
        client,
        settings,
        "users.lookupByEmail",
        args_with_token(params, json!({"email": email})),
        READ,
        None,
    )
    .await
    .map_err(|e| explain_lookup(e, email))?;
    Ok(answer.get("user").cloned().unwrap_or(Value::Null))
}

/// `team_id`: the workspace the token belongs to, from `auth.test`.
pub async fn team_id(
    client: &Client,
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
) -> Result<Value> {
    choose_token(action, params, settings)?;
    let answer = call(
        client,
        settings,
        "auth.test",
        args_with_token(params, json!({})),
        READ,
        None,
    )
    .await?;
    let mut out = Map::new();
    for key in ["team_id", "team", "url", "enterprise_id"] {
        if let Some(v) = answer.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

/// The `email` parameter, checked for the shape of an address (exit 2 before sending).
pub fn valid_email(params: &Map<String, Value>) -> Result<&str> {
    let email = str_param(params, "email").unwrap_or_default().trim();
    let ok = matches!(email.split_once('@'), Some((local, domain))
        if !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace));
    if ok {
        Ok(email)
    } else {
        Err(Error::usage(format!("`{email}` is not an e-mail address")))
    }
}

/// Adds what to do when an address is unknown or hidden.
pub fn explain_lookup(e: Error, email: &str) -> Error {
    let code = e.slack_code().unwrap_or_default().to_string();
    match code.as_str() {
        "users_not_found" => e.hint(format!(
            "no active account in this workspace uses {email} (or the token cannot see it)"
        )),
        _ => e,
    }
}
