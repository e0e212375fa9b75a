//! Jinja templates over a record (MiniJinja), with Slack lookups as filters:
//! `{{ email | slack_user_by_email }}` and `{{ "ops" | slack_channel_by_name }}` give ids
//! (what `channel=` or `user=` need), and `slack_mention` turns an id into the markup Slack
//! shows as a mention (`<@U…>`, `<#C…>`), so `{{ email | slack_user_by_email | slack_mention }}`
//! in a text names the person.
//!
//! Filters cannot wait for HTTP, so rendering runs twice when needed: the first pass records
//! which lookups are missing from the cache, they are resolved (once per run, misses cached
//! too), and the second pass renders with the answers. Unknown fields are errors naming the
//! field.
//!
//! Templates come from the command line but their data from files that may be hostile, so
//! every render is bounded: source size, nesting depth, work ("fuel": instructions plus every
//! byte produced, checked before a large allocation) and output size. A template over a bound
//! fails its record alone, before anything is sent for it.

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

/// Longest template source accepted.
pub const MAX_SOURCE: usize = 64 * 1024;
/// Deepest nesting (loops, calls, filters) a render may reach.
pub const MAX_DEPTH: usize = 64;
/// Work budget of one render, in MiniJinja fuel: one per instruction, one per 64 bytes of
/// data produced. Enough for any real message, far below what exhausts time or memory.
pub const FUEL: u64 = 500_000;
/// Longest rendered value: Slack refuses anything near this in one argument anyway.
pub const MAX_OUTPUT: usize = 1024 * 1024;

pub fn environment(cache: SharedCache) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(MAX_DEPTH);
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
    let c = cache.clone();
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
    let c = cache;
    env.add_filter(
        "slack_mention",
        move |id: String| -> std::result::Result<String, minijinja::Error> {
            // A lookup still unanswered renders as "" on the first pass; that pass's output is
            // thrown away once the answers are in.
            let pending = || {
                let cache = c.lock().unwrap_or_else(|e| e.into_inner());
                !cache.missing_users.is_empty() || cache.need_channels
            };
            mention(&id, pending)
        },
    );
    env
}

/// Slack's mention markup for an id: users `<@U…>`, conversations `<#C…>`, user groups
/// `<!subteam^S…>`, and `here`/`channel`/`everyone` as `<!here>` and so on.
fn mention(id: &str, pending: impl Fn() -> bool) -> std::result::Result<String, minijinja::Error> {
    let fail = |msg: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg);
    let id = id.trim();
    if id.is_empty() {
        return if pending() {
            Ok(String::new())
        } else {
            Err(fail("slack_mention was given an empty value".into()))
        };
    }
    let bare = id.trim_start_matches(['@', '!']);
    if ["here", "channel", "everyone"].contains(&bare) {
        return Ok(format!("<!{bare}>"));
    }
    let shaped = id.len() >= 2
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    match id.as_bytes()[0] {
        b'U' | b'W' if shaped => Ok(format!("<@{id}>")),
        b'C' | b'G' | b'D' if shaped => Ok(format!("<#{id}>")),
        b'S' if shaped => Ok(format!("<!subteam^{id}>")),
        _ if id.contains('@') => Err(fail(format!(
            "slack_mention takes an id, not the address {id}: look it up first, \
             {{{{ email | slack_user_by_email | slack_mention }}}}"
        ))),
        _ => Err(fail(format!(
            "slack_mention takes a user, channel or user-group id (U…, W…, C…, G…, S…), got `{id}`"
        ))),
    }
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
    let at = format!("record {line}: parameter {param}");
    if source.len() > MAX_SOURCE {
        return Err(Error::usage(format!(
            "{at}: the template is longer than {MAX_SOURCE} bytes"
        )));
    }
    let ctx = to_context(&Value::Object(record.clone()));
    let rendered = env
        .template_from_str(source)
        .and_then(|t| t.render(ctx))
        .map_err(|e| explain(env, source, record, &at, &e))?;
    if rendered.len() > MAX_OUTPUT {
        return Err(Error::usage(format!(
            "{at}: the template produced more than {MAX_OUTPUT} bytes; nothing was sent for this record"
        )));
    }
    Ok(rendered)
}

/// A render error in words: which field is missing, or which bound was hit.
fn explain(
    env: &Environment<'_>,
    source: &str,
    record: &Map<String, Value>,
    at: &str,
    e: &minijinja::Error,
) -> Error {
    let detail = e.detail().unwrap_or("");
    let bound = |what: &str| {
        Error::usage(format!("{at}: {what}; nothing was sent for this record"))
            .hint("simplify the template: it is meant to fill in fields, not to compute")
    };
    match e.kind() {
        minijinja::ErrorKind::OutOfFuel => {
            return bound("the template does too much work (over its step and size budget)");
        }
        _ if detail.contains("recursion") => {
            return bound(&format!(
                "the template nests too deeply (more than {MAX_DEPTH} levels)"
            ));
        }
        _ if detail.contains("too large") => {
            return bound("the template builds a value that is too large");
        }
        _ => {}
    }
    // A missing field is the usual cause of an undefined value, and also of an operator
    // failing on one (`'x' * n`): name it.
    let missing = missing_fields(env, source, record);
    if let Some(name) = missing.first() {
        let fields: Vec<&str> = record.keys().map(String::as_str).collect();
        let mut msg = format!("{at}: the record has no field `{name}`");
        if e.kind() != minijinja::ErrorKind::UndefinedError && !detail.is_empty() {
            msg.push_str(&format!(" ({detail})"));
        }
        let mut err = Error::usage(msg);
        if let Some(best) = crate::catalog::suggest_from(name, fields.iter().copied(), 1).first() {
            err = err.hint(format!("did you mean `{best}`?"));
        }
        let shown = if fields.is_empty() {
            "none".to_string()
        } else {
            fields.join(", ")
        };
        return err.hint(format!("the record's fields are: {shown}"));
    }
    let mut msg = format!("{at}: {}", e.kind());
    if !detail.is_empty() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(l) = e.line() {
        msg.push_str(&format!(" (template line {l})"));
    }
    Error::usage(msg)
}

/// Fields (dotted for nested ones) the template reads that the record lacks.
fn missing_fields(env: &Environment<'_>, source: &str, record: &Map<String, Value>) -> Vec<String> {
    let Ok(t) = env.template_from_str(source) else {
        return Vec::new();
    };
    let mut missing: Vec<String> = t
        .undeclared_variables(true)
        .into_iter()
        .filter(|path| {
            let mut parts = path.split('.');
            let Some(first) = parts.next() else {
                return false;
            };
            // Names MiniJinja itself defines are not fields.
            if env.globals().any(|(k, _)| k == first) {
                return false;
            }
            let mut v = match record.get(first) {
                Some(v) => v,
                None => return true,
            };
            for p in parts {
                match v.get(p) {
                    Some(next) => v = next,
                    None => return v.is_object(),
                }
            }
            false
        })
        .collect();
    missing.sort();
    missing
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

    #[test]
    fn mentions_from_ids_and_lookups() {
        let cache = SharedCache::default();
        let env = environment(cache.clone());
        let rec = json!({"email": "a@x.io", "u": "U0000002", "c": "C0000003", "s": "S01", "h": "here", "bad": "hello"})
            .as_object()
            .unwrap()
            .clone();
        let t = "Hi {{ email | slack_user_by_email | slack_mention }}";
        // First pass: the lookup is pending, so the mention is empty rather than an error.
        assert_eq!(render(&env, t, &rec, 1, "text").unwrap(), "Hi ");
        cache
            .lock()
            .unwrap()
            .users
            .insert("a@x.io".into(), Some("U0000001".into()));
        cache.lock().unwrap().missing_users.clear();
        assert_eq!(render(&env, t, &rec, 1, "text").unwrap(), "Hi <@U0000001>");
        let all = "{{ u | slack_mention }} {{ c | slack_mention }} {{ s | slack_mention }} {{ h | slack_mention }}";
        assert_eq!(
            render(&env, all, &rec, 1, "text").unwrap(),
            "<@U0000002> <#C0000003> <!subteam^S01> <!here>"
        );
        let e = render(&env, "{{ bad | slack_mention }}", &rec, 4, "text").unwrap_err();
        assert!(
            e.message.contains("record 4") && e.message.contains("`hello`"),
            "{}",
            e.message
        );
        let e = render(&env, "{{ email | slack_mention }}", &rec, 4, "text").unwrap_err();
        assert!(e.message.contains("slack_user_by_email"), "{}", e.message);
        let e = render(&env, "{{ '' | slack_mention }}", &rec, 4, "text").unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
    }

    #[test]
    fn hostile_templates_fail_with_a_bound_not_an_abort() {
        let env = environment(SharedCache::default());
        let rec = json!({"name": "Ada"}).as_object().unwrap().clone();
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(30_000), ")".repeat(30_000));
        let doubled = format!(
            "{{% set s = 'xx' %}}{}{{{{ s }}}}",
            "{% set s = s ~ s %}".repeat(40)
        );
        let loops =
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
        let huge = "{{ 'x' * 90000000 }}";
        let nested = format!(
            "{}x{}",
            "{% for a in [1] %}".repeat(200),
            "{% endfor %}".repeat(200)
        );
        for (src, want) in [
            (deep.as_str(), "nest"),
            (&"x".repeat(MAX_SOURCE + 1), "longer than"),
            (
                &format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500)),
                "nest",
            ),
            (doubled.as_str(), "too much work"),
            (loops, "too much work"),
            (huge, "too much work"),
            (nested.as_str(), "nest"),
        ] {
            let e = render(&env, src, &rec, 3, "text").unwrap_err();
            assert!(
                e.message.starts_with("record 3: parameter text: "),
                "{}",
                e.message
            );
            assert!(e.message.contains(want), "{want}: {}", e.message);
        }
        // Ordinary templates are well inside the bounds.
        let ok = "{% for i in range(200) %}{{ name }} {% endfor %}";
        assert_eq!(render(&env, ok, &rec, 1, "text").unwrap().len(), 800);
    }

    #[test]
    fn a_missing_field_is_named() {
        let env = environment(SharedCache::default());
        let rec = json!({"name": "Ada", "user": {"email": "a@x.io"}})
            .as_object()
            .unwrap()
            .clone();
        let e = render(&env, "Hi {{ nmae }}", &rec, 2, "text").unwrap_err();
        assert!(e.message.contains("no field `nmae`"), "{}", e.message);
        assert!(
            e.hints.iter().any(|h| h.contains("`name`")),
            "{:?}",
            e.hints
        );
        let e = render(&env, "{{ user.mail }}", &rec, 2, "text").unwrap_err();
        assert!(e.message.contains("no field `user.mail`"), "{}", e.message);
        assert!(!e.message.contains("undefined value"), "{}", e.message);
    }
}
