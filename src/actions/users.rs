//! `users_filter_by`: every page of `users.list`, filtered by attributes. Strings match with
//! shell wildcards, other values by equality, and dotted paths reach nested fields
//! (`profile.email`). Matches stream out page by page with `-o jsonl`, so memory stays flat.

use super::{Sink, glob};
use crate::catalog;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::run::{RunOptions, call_method};
use crate::transport::Client;
use serde_json::{Map, Value};

/// Looks up `a.b.c` in a JSON object.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.get(key))
}

/// Whether one user matches every attribute.
pub fn user_matches(user: &Value, attributes: &Map<String, Value>) -> bool {
    attributes.iter().all(|(path, want)| {
        let got = lookup(user, path);
        match want {
            Value::String(pattern) => {
                let text = match got {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                glob::matches(pattern, &text)
            }
            other => got.is_some_and(|g| values_equal(g, other)),
        }
    })
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

pub async fn filter_by(
    client: &Client,
    params: &Map<String, Value>,
    settings: &Settings,
    mut sink: Sink<'_>,
) -> Result<Value> {
    let attributes = match params.get("attributes") {
        Some(Value::Object(m)) => m.clone(),
        None => Map::new(),
        Some(_) => return Err(Error::usage("attributes must be an object")),
    };
    let list = catalog::find("users.list").expect("users.list is catalogued");
    let mut call = Map::new();
    for key in ["token", "http_method"] {
        if let Some(v) = params.get(key) {
            call.insert(key.into(), v.clone());
        }
    }
    let mut matched: Vec<Value> = Vec::new();
    let mut on_page = |page: &Value, _: &[String]| -> bool {
        for u in page
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if user_matches(u, &attributes) {
                match sink.as_deref_mut() {
                    Some(s) => {
                        if !s(u) {
                            return false;
                        }
                    }
                    None => matched.push(u.clone()),
                }
            }
        }
        true
    };
    call_method(
        client,
        list,
        call,
        settings,
        RunOptions {
            all: true,
            retry_writes: false,
        },
        Some(&mut on_page),
    )
    .await?;
    Ok(Value::Array(matched))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_equality_and_dotted_paths() {
        let u = json!({"name": "bob", "is_admin": true, "tz_offset": -18000, "profile": {"email": "bob@example.com"}});
        let m = |v: Value| user_matches(&u, v.as_object().unwrap());
        assert!(m(json!({"name": "b*"})));
        assert!(!m(json!({"name": "B*"})));
        assert!(m(
            json!({"is_admin": true, "profile.email": "*@example.com"})
        ));
        assert!(!m(json!({"is_admin": false})));
        assert!(m(json!({"tz_offset": -18000})));
        assert!(!m(json!({"profile.title": "?*"})));
        assert!(m(json!({"profile.title": ""})));
        assert!(m(json!({})));
    }
}
