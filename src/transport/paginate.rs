//! Cursor pagination. Slack pages list methods with `cursor`/`limit` and answers
//! `response_metadata.next_cursor`; the loop runs on the cursor, never on item counts (pages
//! can be short or empty while more remain), and re-sends every original argument each time.

use serde_json::{Map, Value};

/// Page size used with `--all` when the caller set no `limit`.
pub const DEFAULT_PAGE_SIZE: u32 = 200;

/// The next cursor of a page: `response_metadata.next_cursor`, or a top-level `next_cursor`
/// (`admin.conversations.search` puts it there). Empty means the last page.
pub fn next_cursor(page: &Value) -> Option<String> {
    let c = page
        .get("response_metadata")
        .and_then(|m| m.get("next_cursor"))
        .or_else(|| page.get("next_cursor"))?;
    let s = match c {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// The keys of a page that hold the listed items (every array except metadata).
pub fn list_keys(page: &Value) -> Vec<String> {
    page.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, v)| {
                    v.is_array() && !matches!(k.as_str(), "response_metadata" | "warnings")
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Appends a later page's lists to the merged result.
pub fn merge_into(merged: &mut Map<String, Value>, page: Value) {
    if let Value::Object(p) = page {
        for (k, v) in p {
            match (merged.get_mut(&k), v) {
                (Some(Value::Array(acc)), Value::Array(more)) if k != "response_metadata" => {
                    acc.extend(more)
                }
                (_, v) if k == "response_metadata" => {
                    merged.insert(k, v);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursor_rules() {
        assert_eq!(
            next_cursor(&json!({"response_metadata": {"next_cursor": "abc"}})),
            Some("abc".into())
        );
        assert_eq!(
            next_cursor(&json!({"response_metadata": {"next_cursor": ""}})),
            None
        );
        assert_eq!(next_cursor(&json!({"next_cursor": 5})), Some("5".into()));
        assert_eq!(
            list_keys(&json!({"ok": true, "members": [], "response_metadata": {}})),
            vec!["members"]
        );
    }
}
