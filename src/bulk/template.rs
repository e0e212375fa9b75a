//! Jinja templates over a record (MiniJinja), with Slack lookups as filters:
//! `{{ email | slack_user_by_email }}` and `{{ "ops" | slack_channel_by_name }}`.
//!
//! Filters cannot wait for HTTP, so rendering runs twice when needed: the first pass records
//! which lookups are missing from the cache, they are resolved (once per run, misses cached
//! too), and the second pass renders with the answers. Unknown fields are errors.

use crate::error::{Error, Result};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Whether a parameter value is a template.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Lookup answers shared by all records of a run (None = known not to exist).
#[derive(Default)]
pub struct Cache {
    pub users: HashMap<String, Option<String>>,
    /// Channel name → id, filled once from every page of `conversations.list`.
    pub channels: Option<HashMap<String, String>>,
    pub missing_users: HashSet<String>,
    pub need_channels: bool,
}

pub type SharedCache = Arc<Mutex<Cache>>;

pub fn environment(cache: SharedCache) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let c = cache.clone();
    env.add_filter(
        "slack_user_by_email",
        move |email: String| -> std::result::Result<String, minijinja::Error> {
            let mut cache = c.lock().unwrap_or_else(|e| e.into_inner());
            let key = email.trim().to_ascii_lowercase();
            match cache.users.get(&key) {
                Some(Some(id)) => Ok(id.clone()),
                Some(None) => Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("no Slack user has the email {email}"),
                )),
                None => {
                    cache.missing_users.insert(key);
                    Ok(String::new())
                }
            }
        },
    );
    let c = cache;
    env.add_filter(
        "slack_channel_by_name",
        move |name: String| -> std::result::Result<String, minijinja::Error> {
            let mut cache = c.lock().unwrap_or_else(|e| e.into_inner());
            let key = name.trim().trim_start_matches('#').to_string();
            match &cache.channels {
                Some(map) => map.get(&key).cloned().ok_or_else(|| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("no channel is named #{key}"),
                    )
                }),
                None => {
                    cache.need_channels = true;
                    Ok(String::new())
                }
            }
        },
    );
    env
}

/// A JSON value as MiniJinja sees it (numbers as numbers, whatever serde_json's features).
pub fn to_context(v: &Value) -> minijinja::Value {
    match v {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => minijinja::Value::from(i),
            (None, Some(f)) => minijinja::Value::from(f),
            _ => minijinja::Value::from(n.to_string()),
        },
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(a) => minijinja::Value::from(a.iter().map(to_context).collect::<Vec<_>>()),
        Value::Object(m) => minijinja::Value::from(
            m.iter()
                .map(|(k, v)| (k.clone(), to_context(v)))
                .collect::<std::collections::BTreeMap<String, minijinja::Value>>(),
        ),
    }
}

/// Renders one template string against a record.
pub fn render(
    env: &Environment<'_>,
    source: &str,
    record: &Map<String, Value>,
    line: u64,
    param: &str,
) -> Result<String> {
    let ctx = to_context(&Value::Object(record.clone()));
    env.render_str(source, ctx).map_err(|e| {
        let mut msg = format!("record {line}: parameter {param}: {}", e.kind());
        if let Some(detail) = e.detail() {
            msg.push_str(": ");
            msg.push_str(detail);
        }
        let mut err = Error::usage(msg);
        if e.kind() == minijinja::ErrorKind::UndefinedError {
            let fields: Vec<&str> = record.keys().map(String::as_str).collect();
            err = err.hint(format!("the record's fields are: {}", fields.join(", ")));
        }
        err
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_fields_and_reports_unknown_ones() {
        let cache = SharedCache::default();
        let env = environment(cache);
        let rec = json!({"name": "Ada", "n": 3}).as_object().unwrap().clone();
        assert_eq!(
            render(&env, "Hi {{ name }} #{{ n + 1 }}", &rec, 1, "text").unwrap(),
            "Hi Ada #4"
        );
        let e = render(&env, "{{ nmae }}", &rec, 7, "text").unwrap_err();
        assert!(
            e.message.contains("record 7") && e.message.contains("text"),
            "{}",
            e.message
        );
        assert!(e.hints[0].contains("name"));
    }

    #[test]
    fn lookups_record_misses_then_use_answers() {
        let cache = SharedCache::default();
        let env = environment(cache.clone());
        let rec = json!({"email": "A@x.io"}).as_object().unwrap().clone();
        assert_eq!(
            render(
                &env,
                "{{ email | slack_user_by_email }}",
                &rec,
                1,
                "channel"
            )
            .unwrap(),
            ""
        );
        assert!(cache.lock().unwrap().missing_users.contains("a@x.io"));
        cache
            .lock()
            .unwrap()
            .users
            .insert("a@x.io".into(), Some("U1".into()));
        assert_eq!(
            render(
                &env,
                "{{ email | slack_user_by_email }}",
                &rec,
                1,
                "channel"
            )
            .unwrap(),
            "U1"
        );
        cache.lock().unwrap().users.insert("a@x.io".into(), None);
        assert!(
            render(
                &env,
                "{{ email | slack_user_by_email }}",
                &rec,
                1,
                "channel"
            )
            .is_err()
        );
    }
}
