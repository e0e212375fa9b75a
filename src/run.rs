//! Running one action: pick the token, encode the call, send it, page through results.
//! The command-line layer hands in validated parameters; this module returns Slack's JSON
//! (or streams list items) and leaves printing and exit codes to the caller.

use crate::catalog::{Action, Verb};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::transport::encode::{encode, verb_for};
use crate::transport::pace::{Pacer, Scope, Slot, fingerprint};
use crate::transport::{Client, ClientOptions, Request, paginate};
use serde_json::{Map, Value};

/// Receives each page and the names of its list fields; returns false to stop early.
pub type PageSink<'a> = &'a mut (dyn FnMut(&Value, &[String]) -> bool + Send);

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Follow `next_cursor` through every page.
    pub all: bool,
    /// Resend writes after ambiguous failures (may post twice).
    pub retry_writes: bool,
}

/// Builds the client from settings.
pub fn client(settings: &Settings, verbose: bool) -> Result<Client> {
    Client::new(ClientOptions {
        api_url: settings.api_url.clone(),
        timeout: settings.timeout,
        retries: settings.retries,
        verbose,
        pacer: match settings.pace_state.clone() {
            Some(p) => Some(Pacer::new(
                crate::store::pace::open(&settings.backend, p)?,
                settings.max_wait,
                settings.limits.clone(),
            )),
            None => None,
        },
        ..ClientOptions::default()
    })
}

/// The rate-limit slot of one call: per workspace and method, and per channel for
/// `chat.postMessage`. The key names the token and the channel as given; the client turns
/// them into the workspace id and the channel id (see `transport::pace`).
pub fn pace_slot(
    action: &Action,
    method: &str,
    params: &Map<String, Value>,
    settings: &Settings,
    token: Option<&Secret>,
) -> Slot {
    let who = fingerprint(&[&settings.api_url, token.map(Secret::expose).unwrap_or("")]);
    let mut key = format!("{who}|{method}");
    let mut label = method.to_string();
    let channel = (method == "chat.postMessage")
        .then(|| params.get("channel").and_then(Value::as_str))
        .flatten();
    if let Some(ch) = channel {
        key.push('|');
        if crate::transport::pace::is_conversation_id(ch) {
            key.push_str(ch);
        } else {
            key.push_str(&crate::transport::pace::channel_name(ch));
        }
        label = format!("{method} to {ch}");
    }
    Slot {
        key,
        limit: settings.limits.for_call(action, method),
        label,
        // auth.test is how a workspace is learned; it keeps the token's own key.
        scope: (token.is_some() && method != "auth.test").then(|| Scope {
            who,
            method: method.to_string(),
            channel: channel.map(str::to_string),
        }),
    }
}

/// Chooses the token: the `token` parameter, else the configured one; app-level methods use
/// the app token. A method that needs a token and has none is a config error (exit 2).
pub fn choose_token(
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
) -> Result<Option<Secret>> {
    if let Some(t) = params
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Secret::new(t)));
    }
    if !action.needs_token() {
        return Ok(None);
    }
    let app_only = action.tokens == ["app"];
    let chosen = if app_only {
        settings.app_token.clone()
    } else {
        settings.token.clone()
    };
    if let Some(t) = chosen {
        return Ok(Some(t));
    }
    let mut e = Error::config(format!(
        "{} needs {} and none is configured",
        action.name,
        token_kinds(action.tokens)
    ))
    .hint(settings.looked_for(if app_only {
        crate::config::Credential::AppToken
    } else {
        crate::config::Credential::Token
    }));
    e = if app_only {
        e.hint("set SLACK_APP_TOKEN (an xapp- token with connections:write) or sensor.app_token in the config")
    } else {
        e.hint(
            "set SLACK_TOKEN, put action_token in the config file, or pass token=… for this call",
        )
    };
    Err(e)
}

/// The tokens a method takes, as a phrase with its article: `a token`, `a user token
/// (xoxp-…)`, `a bot (xoxb-…) or user (xoxp-…) token`, `an app-level token (xapp-…)`.
pub fn token_kinds(tokens: &[&str]) -> String {
    let known: Vec<(&str, Option<&str>)> = tokens
        .iter()
        .filter_map(|t| match *t {
            "bot" => Some(("bot", Some("xoxb-"))),
            "user" => Some(("user", Some("xoxp-"))),
            "app" => Some(("app-level", Some("xapp-"))),
            "config" => Some(("app configuration", None)),
            _ => None,
        })
        .collect();
    if known.is_empty() || tokens.contains(&"any") {
        return "a token".to_string();
    }
    let shown = |(name, prefix): &(&str, Option<&str>)| match prefix {
        Some(p) => format!("{name} ({p}…)"),
        None => name.to_string(),
    };
    let phrase = match known.as_slice() {
        [(name, Some(p))] => format!("{name} token ({p}…)"),
        [(name, None)] => format!("{name} token"),
        _ => format!(
            "{} token",
            known.iter().map(shown).collect::<Vec<_>>().join(" or ")
        ),
    };
    // Only "app…" of the kinds above takes "an" ("a user token").
    let article = if phrase.starts_with("app") { "an" } else { "a" };
    format!("{article} {phrase}")
}

/// Whether a failed attempt of this method may be resent safely.
pub fn idempotent(action: &Action, verb: Verb, opts: &RunOptions) -> bool {
    opts.retry_writes
        || verb == Verb::Get
        || action.http_verb == Verb::Get
        || matches!(action.method, "api.test" | "auth.test")
}

/// Calls a generic Web API action once (or through every page with `all`), giving each page
/// to `on_page` as it arrives. Returns the merged answer unless `on_page` consumed the items.
pub async fn call_method(
    client: &Client,
    action: &Action,
    mut params: Map<String, Value>,
    settings: &Settings,
    opts: RunOptions,
    mut on_page: Option<PageSink<'_>>,
) -> Result<Value> {
    let method = action.end_point().unwrap_or(action.name);
    warn_if_retired(action);
    let token = choose_token(action, &params, settings)?;
    let verb = verb_for(action, &params);
    let idem = idempotent(action, verb, &opts);
    if opts.all && !action.is_cursor_paginated() {
        return Err(Error::usage(format!(
            "{} does not page with cursors; drop --all",
            action.name
        )));
    }
    if opts.all && !params.contains_key("limit") && action.param("limit").is_some() {
        params.insert("limit".into(), Value::from(paginate::DEFAULT_PAGE_SIZE));
    }
    let mut merged: Option<Map<String, Value>> = None;
    let mut seen_cursors: Vec<String> = Vec::new();
    loop {
        let body = encode(action, &params, verb);
        let pace = Some(pace_slot(action, method, &params, settings, token.as_ref()));
        let resp = client
            .call(&Request {
                method,
                body,
                token: token.as_ref(),
                idempotent: idem,
                pace,
            })
            .await?;
        let next = if opts.all {
            paginate::next_cursor(&resp.body)
        } else {
            None
        };
        let keys = paginate::list_keys(&resp.body);
        if let Some(cb) = on_page.as_deref_mut() {
            if !cb(&resp.body, &keys) {
                return Ok(Value::Null); // the consumer stopped (e.g. stdout closed)
            }
        } else {
            match merged.as_mut() {
                None => merged = resp.body.as_object().cloned(),
                Some(m) => paginate::merge_into(m, resp.body),
            }
        }
        let Some(cursor) = next else { break };
        if seen_cursors.contains(&cursor) {
            return Err(Error::failed(format!(
                "{method}: Slack repeated cursor {cursor}; stopping to avoid a loop"
            )));
        }
        seen_cursors.push(cursor.clone());
        params.insert("cursor".into(), Value::String(cursor));
    }
    Ok(match merged {
        Some(mut m) => {
            if opts.all
                && let Some(Value::Object(meta)) = m.get_mut("response_metadata")
            {
                meta.insert("next_cursor".into(), Value::String(String::new()));
            }
            Value::Object(m)
        }
        None => Value::Null,
    })
}

/// Tells the user, once per call, that a method is retired or deprecated and what replaces it.
pub fn warn_if_retired(action: &Action) {
    if action.is_retired_or_deprecated() {
        let mut msg = format!("{} is {} by Slack", action.name, action.status.as_str());
        if let Some(r) = action.replacement {
            msg.push_str(&format!("; use {r}"));
        }
        crate::log::warn(&msg);
    }
}

#[cfg(test)]
mod tests {
    use super::token_kinds;

    #[test]
    fn token_kinds_read_as_phrases() {
        assert_eq!(token_kinds(&["any"]), "a token");
        assert_eq!(token_kinds(&[]), "a token");
        assert_eq!(token_kinds(&["user"]), "a user token (xoxp-…)");
        assert_eq!(token_kinds(&["app"]), "an app-level token (xapp-…)");
        assert_eq!(token_kinds(&["config"]), "an app configuration token");
        assert_eq!(
            token_kinds(&["bot", "user"]),
            "a bot (xoxb-…) or user (xoxp-…) token"
        );
    }
}
