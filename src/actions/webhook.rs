//! `post_message` and `post_attachment`: a post to an incoming webhook. The URL is a secret
//! (it is the credential): it never appears in output, errors or logs.
//!
//! Each of webhook_url, channel, username, icon_emoji and icon_url falls back to the config's
//! `post_message_action` when not given, as st2 does. Slack answers webhooks with plain text
//! (`ok`, or an error code) and meaningful status codes.

use super::str_param;
use crate::catalog::Action;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::run::RunOptions;
use crate::transport::Client;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Builds the JSON body from the parameters and config defaults.
pub fn body(
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
) -> Map<String, Value> {
    let defaults = &settings.file.post_message_action;
    let mut b = Map::new();
    if action.name == "post_attachment" {
        if let Some(a) = params.get("attachment") {
            b.insert("attachments".into(), json!([a]));
        }
    } else if let Some(m) = params.get("message") {
        b.insert("text".into(), m.clone());
    }
    let pick = |name: &str, fallback: &Option<String>| {
        str_param(params, name)
            .map(str::to_string)
            .or_else(|| fallback.clone().filter(|s| !s.is_empty()))
    };
    for (name, fallback) in [
        ("channel", &defaults.channel),
        ("username", &defaults.username),
        ("icon_emoji", &defaults.icon_emoji),
        ("icon_url", &defaults.icon_url),
    ] {
        if let Some(v) = pick(name, fallback) {
            b.insert(name.into(), Value::String(v));
        }
    }
    if params.get("disable_formatting").and_then(Value::as_bool) == Some(true) {
        b.insert("parse".into(), json!("none"));
    }
    b
}

pub async fn post(
    client: &Client,
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
    opts: RunOptions,
) -> Result<Value> {
    let url = match str_param(params, "webhook_url") {
        Some(u) => Secret::new(u),
        None => settings.webhook_url.clone().ok_or_else(|| {
            Error::config(format!("{} needs an incoming webhook URL", action.name))
                .hint(settings.looked_for(crate::config::Credential::WebhookUrl))
                .hint(
                    "pass webhook_url=…, set SLACK_WEBHOOK_URL, or set post_message_action.webhook_url in the config",
                )
        })?,
    };
    if !(url.expose().starts_with("https://") || url.expose().starts_with("http://")) {
        return Err(Error::usage("the webhook URL must start with https://"));
    }
    let body = body(action, params, settings);
    let overrides: Vec<&str> = ["channel", "username", "icon_emoji", "icon_url"]
        .into_iter()
        .filter(|k| body.contains_key(*k))
        .collect();
    if !overrides.is_empty() {
        crate::log::warn(&format!(
            "{} is set; webhooks created by Slack apps ignore it and post to their own channel as the app",
            overrides.join(", ")
        ));
    }
    let payload = serde_json::to_vec(&body).unwrap_or_default();
    let slot = crate::transport::pace::Slot {
        key: format!(
            "webhook|{}",
            crate::transport::pace::fingerprint(&[url.expose()])
        ),
        limit: settings.limits.for_webhook(),
        label: "incoming webhook".into(),
        scope: None,
    };
    let mut attempt = 0;
    loop {
        if let Some(p) = &client.options().pacer {
            p.wait(&slot).await?;
        }
        let resp = client
            .http_for(url.expose())?
            .post(url.expose())
            .header("content-type", "application/json; charset=utf-8")
            .body(payload.clone())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let e = e.without_url();
                if e.is_connect() && attempt < client.options().retries {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
                    continue;
                }
                return Err(Error::failed(format!(
                    "{}: webhook request failed ({e})",
                    action.name
                ))
                .hint("not resent automatically: the message may or may not have been posted"));
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let text = resp.text().await.unwrap_or_default();
        let text = text.trim().to_string();
        if status == 200 {
            return Ok(Value::Bool(true));
        }
        let retriable = status == 429 || (status >= 500 && opts.retry_writes);
        if retriable && attempt < client.options().retries {
            attempt += 1;
            let wait =
                crate::limits::retry_after(retry_after.unwrap_or(1.0), Duration::from_secs(120));
            if let (Some(p), 429) = (&client.options().pacer, status) {
                p.penalize(&slot, wait);
            }
            crate::log::warn(&format!(
                "{}: webhook answered HTTP {status}; retrying in {:.1}s",
                action.name,
                wait.as_secs_f64()
            ));
            tokio::time::sleep(wait).await;
            continue;
        }
        let code: String = text.chars().take(200).collect();
        let mut e = Error::failed(format!("{} failed: {code} (HTTP {status})", action.name))
            .with_response(json!({"ok": false, "error": code, "status": status}));
        e = match code.as_str() {
            "no_service" | "no_team" | "invalid_token" | "no_service_id" => {
                e.hint("the webhook URL is wrong, disabled or removed: create a new one and update SLACK_WEBHOOK_URL / post_message_action.webhook_url")
            }
            "channel_not_found" => e.hint("the webhook's channel no longer exists"),
            "channel_is_archived" => e.hint("the webhook's channel is archived: unarchive it or use another webhook"),
            "action_prohibited" | "posting_to_general_channel_denied" => {
                e.hint("a workspace admin restricts posting there")
            }
            "no_text" => e.hint("give message= (post_message) or attachment= (post_attachment)"),
            "invalid_payload" => e.hint("Slack could not read the payload; check the attachment JSON"),
            _ if status >= 500 => e.hint("Slack had trouble; not resent (it could post twice); retry, or use --retry-writes"),
            _ => e,
        };
        return Err(e);
    }
}
