//! `users.admin.invite`: Slack's undocumented legacy invite, kept for st2 workflows.
//!
//! Unlike the st2 pack, the token travels in the `Authorization` header (never the query), the
//! request is a form POST, `channels` is comma-joined, `set_active=false` is honoured, and the
//! answer is Slack's JSON. The host is the workspace's own (`https://<organization>.slack.com`)
//! as st2 uses it, unless an API URL was set explicitly (e.g. the emulator).

use super::str_param;
use crate::catalog::Action;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::transport::{Body, Client, Request};
use serde_json::{Map, Value};

/// The method name Slack serves.
const METHOD: &str = "users.admin.invite";

/// The API base for the invite: `<api_url>` when set explicitly, else the organization's host.
pub fn base_url(settings: &Settings) -> Result<String> {
    if settings.api_url_explicit {
        return Ok(settings.api_url.clone());
    }
    let org = settings
        .file
        .admin
        .organization
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    if org.is_empty() {
        return Err(Error::config(
            "users.admin.invite needs the workspace's subdomain in admin.organization",
        )
        .hint("set admin.organization (e.g. `myorg` for https://myorg.slack.com) in the config file, or set an API URL (SLACK_API_URL / --api-url)")
        .hint("on Enterprise Grid, prefer `slackctl run admin.users.invite`"));
    }
    // Accept `myorg`, `myorg.slack.com` and `https://myorg.slack.com/`.
    let host = org
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let sub = host.strip_suffix(".slack.com").unwrap_or(host);
    let valid = !sub.is_empty() && sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(Error::config(format!(
            "admin.organization `{org}` is not a Slack subdomain"
        ))
        .hint("use the part before .slack.com, e.g. `myorg` for https://myorg.slack.com"));
    }
    Ok(format!(
        "https://{}.slack.com/api/",
        sub.to_ascii_lowercase()
    ))
}

/// The form sent to Slack, with the config's `admin` fallbacks applied.
pub fn form(params: &Map<String, Value>, settings: &Settings) -> Vec<(String, String)> {
    let admin = &settings.file.admin;
    let mut pairs = Vec::new();
    if let Some(e) = str_param(params, "email") {
        pairs.push(("email".to_string(), e.trim().to_string()));
    }
    let channels: Vec<String> = match params.get("channels") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            })
            .collect(),
        _ => admin
            .auto_join_channels
            .iter()
            .map(|c| c.trim().to_string())
            .collect(),
    };
    let channels: Vec<String> = channels.into_iter().filter(|c| !c.is_empty()).collect();
    if !channels.is_empty() {
        pairs.push(("channels".into(), channels.join(",")));
    }
    if let Some(f) = str_param(params, "first_name") {
        pairs.push(("first_name".into(), f.to_string()));
    }
    let set_active = params
        .get("set_active")
        .and_then(Value::as_bool)
        .unwrap_or(admin.set_active);
    pairs.push(("set_active".into(), set_active.to_string()));
    let attempts = params
        .get("attempts")
        .and_then(Value::as_i64)
        .unwrap_or(admin.attempts);
    pairs.push(("_attempts".into(), attempts.to_string()));
    pairs
}

/// The token: the parameter, else `admin.admin_token`, else the configured Web API token.
fn token(params: &Map<String, Value>, settings: &Settings) -> Result<Secret> {
    if let Some(t) = str_param(params, "token") {
        return Ok(Secret::new(t));
    }
    let admin = settings.file.admin.admin_token.trim();
    if !admin.is_empty() {
        return Ok(Secret::new(admin));
    }
    settings.token.clone().ok_or_else(|| {
        Error::config("users.admin.invite needs a legacy admin user token and none is configured")
            .hint("pass token=…, set admin.admin_token in the config, or set SLACK_TOKEN")
    })
}

pub async fn invite(
    client: &Client,
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
) -> Result<Value> {
    let base = base_url(settings)?;
    let token = token(params, settings)?;
    let pairs = form(params, settings);
    if !pairs.iter().any(|(k, _)| k == "email") {
        return Err(Error::usage("email is required"));
    }
    crate::log::warn(&format!(
        "{} is an undocumented legacy method that only legacy admin tokens may call; use {} (Enterprise Grid) where you can",
        action.name,
        action.replacement.unwrap_or("admin.users.invite")
    ));
    let mut opts = client.options().clone();
    opts.api_url = base;
    let invite_client = Client::new(opts)?;
    let resp = invite_client
        .call(&Request {
            method: METHOD,
            body: Body::Form(pairs),
            token: Some(&token),
            idempotent: false,
            pace: Some(crate::run::pace_slot(
                action,
                METHOD,
                params,
                settings,
                Some(&token),
            )),
        })
        .await
        .map_err(explain)?;
    Ok(resp.body)
}

/// Hints for the errors a modern token gets from this legacy method.
fn explain(e: Error) -> Error {
    let code = e.slack_code().unwrap_or_default().to_string();
    match code.as_str() {
        "not_allowed_token_type" | "missing_scope" | "paid_only" | "not_allowed" => e.hint(
            "users.admin.invite accepts only legacy admin user tokens; on Enterprise Grid use admin.users.invite",
        ),
        "already_invited" | "already_in_team" => {
            e.hint("nothing to do: the address is already invited or a member")
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdminConfig, FileConfig};
    use serde_json::json;

    fn settings(org: Option<&str>, explicit: bool) -> Settings {
        let mut s = Settings::for_api("https://slack.com/api/", "xoxp-test-token");
        s.api_url_explicit = explicit;
        s.file = FileConfig {
            admin: AdminConfig {
                organization: org.map(String::from),
                set_active: true,
                attempts: 1,
                auto_join_channels: vec!["C9".into(), " C8".into()],
                ..AdminConfig::default()
            },
            ..FileConfig::default()
        };
        s
    }

    #[test]
    fn host_follows_organization_unless_the_url_is_explicit() {
        assert_eq!(
            base_url(&settings(Some("acme"), false)).unwrap(),
            "https://acme.slack.com/api/"
        );
        assert_eq!(
            base_url(&settings(Some("https://Acme.slack.com/"), false)).unwrap(),
            "https://acme.slack.com/api/"
        );
        assert_eq!(
            base_url(&settings(Some("acme"), true)).unwrap(),
            "https://slack.com/api/"
        );
        let e = base_url(&settings(None, false)).unwrap_err();
        assert!(e.message.contains("admin.organization"), "{}", e.message);
        assert!(base_url(&settings(Some("a b/c"), false)).is_err());
    }

    #[test]
    fn form_uses_params_then_config_and_honours_false() {
        let s = settings(None, true);
        let p = json!({"email": "a@b.co", "channels": ["C1", " C2"], "set_active": false, "attempts": 3, "first_name": "Ann"});
        assert_eq!(
            form(p.as_object().unwrap(), &s),
            vec![
                ("email".to_string(), "a@b.co".to_string()),
                ("channels".into(), "C1,C2".into()),
                ("first_name".into(), "Ann".into()),
                ("set_active".into(), "false".into()),
                ("_attempts".into(), "3".into()),
            ]
        );
        let p = json!({"email": "a@b.co"});
        assert_eq!(
            form(p.as_object().unwrap(), &s),
            vec![
                ("email".to_string(), "a@b.co".to_string()),
                ("channels".into(), "C9,C8".into()),
                ("set_active".into(), "true".into()),
                ("_attempts".into(), "1".into()),
            ]
        );
    }
}
