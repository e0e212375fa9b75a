//! Block Kit validation, the way Slack refuses blocks: `invalid_blocks` with one line per
//! problem, each ending in the JSON pointer of the offending field, both in `errors` and (as
//! `[ERROR] …`) in `response_metadata.messages`.
//!
//! It checks what apps most often get wrong: unknown block and element types, missing
//! required fields, wrong text-object types, and Slack's documented size limits (50 blocks in
//! a message, 100 in a view, 3,000 characters of section text, 150 of header text, 10 section
//! fields of 2,000 characters, 25 action elements, 10 context elements, 255-character ids).

use super::request::ApiError;
use serde_json::{Value, json};

/// Where the blocks go: messages allow 50, views (modals, Home tabs) 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Message,
    View,
}

const BLOCK_TYPES: &[&str] = &[
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "video",
    "call",
    "context_actions",
];

/// Interactive elements (in `actions`, section accessories and `input`).
const ELEMENT_TYPES: &[&str] = &[
    "button",
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "email_text_input",
    "file_input",
    "image",
    "multi_static_select",
    "multi_external_select",
    "multi_users_select",
    "multi_conversations_select",
    "multi_channels_select",
    "number_input",
    "overflow",
    "plain_text_input",
    "radio_buttons",
    "rich_text_input",
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
    "timepicker",
    "url_text_input",
    "workflow_button",
];

struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn fail(&mut self, at: &str, what: impl Into<String>) {
        self.problems
            .push(format!("{} [json-pointer:{at}]", what.into()));
    }

    /// A text object: `{"type": "plain_text" | "mrkdwn", "text": "…"}` within `max` characters.
    fn text(&mut self, v: &Value, at: &str, plain_only: bool, max: usize) {
        let Some(o) = v.as_object() else {
            self.fail(at, "must be a text object");
            return;
        };
        match o.get("type").and_then(Value::as_str) {
            Some("plain_text") => {}
            Some("mrkdwn") if !plain_only => {}
            Some("mrkdwn") => self.fail(&format!("{at}/type"), "must be plain_text"),
            Some(t) => self.fail(
                &format!("{at}/type"),
                format!("must be a valid enum value (`{t}` is not a text type)"),
            ),
            None => self.fail(&format!("{at}/type"), "must provide a text type"),
        }
        match o.get("text").and_then(Value::as_str) {
            None => self.fail(&format!("{at}/text"), "must provide a string"),
            Some("") => self.fail(&format!("{at}/text"), "must be more than 0 characters"),
            Some(t) if t.chars().count() > max => self.fail(
                &format!("{at}/text"),
                format!("must be less than {} characters", max + 1),
            ),
            Some(_) => {}
        }
    }

    fn element(&mut self, v: &Value, at: &str) {
        let Some(t) = v.get("type").and_then(Value::as_str) else {
            self.fail(&format!("{at}/type"), "must provide an element type");
            return;
        };
        if !ELEMENT_TYPES.contains(&t) {
            self.fail(
                &format!("{at}/type"),
                format!("must be a valid enum value (`{t}` is not an element type)"),
            );
            return;
        }
        match t {
            "button" => {
                match v.get("text") {
                    Some(x) => self.text(x, &format!("{at}/text"), true, 75),
                    None => self.fail(&format!("{at}/text"), "must provide an object"),
                }
                self.id(v, "action_id", at);
            }
            "image" => {
                if v.get("image_url").is_none() && v.get("slack_file").is_none() {
                    self.fail(&format!("{at}/image_url"), "must provide a string");
                }
                if v.get("alt_text").and_then(Value::as_str).is_none() {
                    self.fail(&format!("{at}/alt_text"), "must provide a string");
                }
            }
            "static_select"
            | "multi_static_select"
            | "radio_buttons"
            | "checkboxes"
            | "overflow" => {
                let opts = v.get("options").and_then(Value::as_array);
                let groups = v.get("option_groups").and_then(Value::as_array);
                if opts.is_none() && groups.is_none() {
                    self.fail(&format!("{at}/options"), "must provide an array");
                }
                if let Some(opts) = opts {
                    for (i, o) in opts.iter().enumerate() {
                        let oat = format!("{at}/options/{i}");
                        match o.get("text") {
                            Some(x) => self.text(x, &format!("{oat}/text"), false, 75),
                            None => self.fail(&format!("{oat}/text"), "must provide an object"),
                        }
                        if o.get("value").and_then(Value::as_str).is_none() {
                            self.fail(&format!("{oat}/value"), "must provide a string");
                        }
                    }
                }
                self.id(v, "action_id", at);
            }
            _ => self.id(v, "action_id", at),
        }
    }

    /// `block_id` / `action_id`: optional strings of at most 255 characters.
    fn id(&mut self, v: &Value, key: &str, at: &str) {
        match v.get(key) {
            None => {}
            Some(Value::String(s)) if s.chars().count() <= 255 => {}
            Some(Value::String(_)) => {
                self.fail(&format!("{at}/{key}"), "must be less than 256 characters")
            }
            Some(_) => self.fail(&format!("{at}/{key}"), "must be a string"),
        }
    }

    fn block(&mut self, b: &Value, at: &str) {
        if !b.is_object() {
            self.fail(at, "must be an object");
            return;
        }
        let t = match b.get("type").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => t,
            _ => {
                self.fail(&format!("{at}/type"), "must provide a block type");
                return;
            }
        };
        if !BLOCK_TYPES.contains(&t) {
            self.fail(
                &format!("{at}/type"),
                format!("must be a valid enum value (`{t}` is not a block type)"),
            );
            return;
        }
        self.id(b, "block_id", at);
        let arr = |k: &str| b.get(k).and_then(Value::as_array);
        match t {
            "section" => {
                if b.get("text").is_none() && b.get("fields").is_none() {
                    self.fail(&format!("{at}/text"), "must provide either text or fields");
                }
                if let Some(x) = b.get("text") {
                    self.text(x, &format!("{at}/text"), false, 3000);
                }
                if let Some(f) = b.get("fields") {
                    match f.as_array() {
                        None => self.fail(&format!("{at}/fields"), "must be an array"),
                        Some(f) if f.len() > 10 => self.fail(
                            &format!("{at}/fields"),
                            "must provide no more than 10 items",
                        ),
                        Some(f) => {
                            for (i, x) in f.iter().enumerate() {
                                self.text(x, &format!("{at}/fields/{i}"), false, 2000);
                            }
                        }
                    }
                }
                if let Some(acc) = b.get("accessory") {
                    self.element(acc, &format!("{at}/accessory"));
                }
            }
            "header" => match b.get("text") {
                Some(x) => self.text(x, &format!("{at}/text"), true, 150),
                None => self.fail(&format!("{at}/text"), "must provide an object"),
            },
            "divider" => {}
            "image" => {
                if b.get("image_url").is_none() && b.get("slack_file").is_none() {
                    self.fail(&format!("{at}/image_url"), "must provide a string");
                }
                match b.get("alt_text").and_then(Value::as_str) {
                    None => self.fail(&format!("{at}/alt_text"), "must provide a string"),
                    Some(s) if s.chars().count() > 2000 => self.fail(
                        &format!("{at}/alt_text"),
                        "must be less than 2001 characters",
                    ),
                    Some(_) => {}
                }
                if let Some(x) = b.get("title") {
                    self.text(x, &format!("{at}/title"), true, 2000);
                }
            }
            "actions" | "context" => {
                let max = if t == "actions" { 25 } else { 10 };
                match arr("elements") {
                    None => self.fail(&format!("{at}/elements"), "must provide an array"),
                    Some(e) if e.is_empty() => {
                        self.fail(&format!("{at}/elements"), "must provide at least 1 item")
                    }
                    Some(e) if e.len() > max => self.fail(
                        &format!("{at}/elements"),
                        format!("must provide no more than {max} items"),
                    ),
                    Some(e) => {
                        for (i, x) in e.iter().enumerate() {
                            let eat = format!("{at}/elements/{i}");
                            let et = x.get("type").and_then(Value::as_str);
                            if t == "context" && matches!(et, Some("plain_text" | "mrkdwn")) {
                                self.text(x, &eat, false, 3000);
                            } else {
                                self.element(x, &eat);
                            }
                        }
                    }
                }
            }
            "input" => {
                match b.get("label") {
                    Some(x) => self.text(x, &format!("{at}/label"), true, 2000),
                    None => self.fail(&format!("{at}/label"), "must provide an object"),
                }
                match b.get("element") {
                    Some(x) => self.element(x, &format!("{at}/element")),
                    None => self.fail(&format!("{at}/element"), "must provide an object"),
                }
            }
            "rich_text" if arr("elements").is_none() => {
                self.fail(&format!("{at}/elements"), "must provide an array");
            }
            "markdown" => match b.get("text").and_then(Value::as_str) {
                None => self.fail(&format!("{at}/text"), "must provide a string"),
                Some(s) if s.chars().count() > 12_000 => {
                    self.fail(&format!("{at}/text"), "must be less than 12001 characters")
                }
                Some(_) => {}
            },
            "file" => {
                if b.get("external_id").and_then(Value::as_str).is_none() {
                    self.fail(&format!("{at}/external_id"), "must provide a string");
                }
                if b.get("source").and_then(Value::as_str).is_none() {
                    self.fail(&format!("{at}/source"), "must provide a string");
                }
            }
            "video" => {
                for k in ["video_url", "thumbnail_url", "alt_text"] {
                    if b.get(k).and_then(Value::as_str).is_none() {
                        self.fail(&format!("{at}/{k}"), "must provide a string");
                    }
                }
                match b.get("title") {
                    Some(x) => self.text(x, &format!("{at}/title"), true, 200),
                    None => self.fail(&format!("{at}/title"), "must provide an object"),
                }
            }
            _ => {}
        }
    }
}

/// The problems with `blocks` (an argument named `pointer`, e.g. `/blocks` or
/// `/view/blocks`), as Slack's `errors` lines; empty when Slack would accept them.
pub fn problems(blocks: &Value, pointer: &str, surface: Surface) -> Vec<String> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    match blocks.as_array() {
        None => c.fail(pointer, "must be an array"),
        Some(items) => {
            let max = match surface {
                Surface::Message => 50,
                Surface::View => 100,
            };
            if items.len() > max {
                c.fail(pointer, format!("must provide no more than {max} items"));
            }
            for (i, b) in items.iter().enumerate() {
                c.block(b, &format!("{pointer}/{i}"));
            }
        }
    }
    c.problems
}

/// `invalid_blocks` carrying every problem, or `Ok` when there is none.
pub fn check(blocks: &Value, pointer: &str, surface: Surface) -> Result<(), ApiError> {
    let lines = problems(blocks, pointer, surface);
    let Some(first) = lines.first() else {
        return Ok(());
    };
    let messages: Vec<String> = lines.iter().map(|l| format!("[ERROR] {l}")).collect();
    Err(ApiError::reject("invalid_blocks", first.clone())
        .with("errors", json!(lines))
        .with("response_metadata", json!({"messages": messages})))
}

/// A view (`views.open` / `push` / `update` / `publish`): its type, title and blocks.
pub fn check_view(view: &Value) -> Result<(), ApiError> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let kind = view.get("type").and_then(Value::as_str);
    match kind {
        Some("modal" | "home") => {}
        Some(_) => c.fail("/view/type", "must be a valid enum value"),
        None => c.fail("/view/type", "must provide a string"),
    }
    if kind == Some("modal") {
        match view.get("title") {
            Some(t) => c.text(t, "/view/title", true, 24),
            None => c.fail("/view/title", "must provide an object"),
        }
        for k in ["submit", "close"] {
            if let Some(t) = view.get(k) {
                c.text(t, &format!("/view/{k}"), true, 24);
            }
        }
    }
    let mut lines = c.problems;
    match view.get("blocks") {
        None => lines.push("must provide an array [json-pointer:/view/blocks]".into()),
        Some(b) => lines.extend(problems(b, "/view/blocks", Surface::View)),
    }
    let Some(first) = lines.first() else {
        return Ok(());
    };
    let code = if lines.iter().all(|l| l.contains("/view/blocks")) {
        "invalid_blocks"
    } else {
        "invalid_arguments"
    };
    let messages: Vec<String> = lines.iter().map(|l| format!("[ERROR] {l}")).collect();
    Err(ApiError::reject(code, first.clone())
        .with("errors", json!(lines))
        .with("response_metadata", json!({"messages": messages})))
}

#[cfg(test)]
mod unit {
    use super::*;

    fn one(blocks: Value) -> Vec<String> {
        problems(&blocks, "/blocks", Surface::Message)
    }

    #[test]
    fn accepts_common_blocks() {
        let ok = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "Deploy"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*done*"},
             "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Go"},
                           "action_id": "go"}},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}]},
            {"type": "actions", "elements": [{"type": "button",
                "text": {"type": "plain_text", "text": "A"}, "value": "a"}]},
            {"type": "image", "image_url": "https://x/y.png", "alt_text": "y"},
            {"type": "rich_text", "elements": []},
        ]);
        assert_eq!(one(ok), Vec::<String>::new());
    }

    #[test]
    fn names_the_offending_path() {
        assert_eq!(
            one(json!([{"type": "divider"}, {"type": "bogus"}])),
            [
                "must be a valid enum value (`bogus` is not a block type) [json-pointer:/blocks/1/type]"
            ]
        );
        assert_eq!(
            one(json!([{"type": "section"}])),
            ["must provide either text or fields [json-pointer:/blocks/0/text]"]
        );
        assert_eq!(
            one(json!([{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}])),
            ["must be plain_text [json-pointer:/blocks/0/text/type]"]
        );
        let long = "x".repeat(3001);
        assert_eq!(
            one(json!([{"type": "section", "text": {"type": "mrkdwn", "text": long}}])),
            ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]
        );
        let many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
        assert_eq!(
            one(Value::Array(many.clone())),
            ["must provide no more than 50 items [json-pointer:/blocks]"]
        );
        assert!(problems(&Value::Array(many), "/view/blocks", Surface::View).is_empty());
    }

    #[test]
    fn views_need_a_type_and_a_title() {
        let e = check_view(&json!({"type": "modal", "blocks": []})).unwrap_err();
        assert_eq!(e.code, "invalid_arguments");
        let e = check_view(
            &json!({"type": "modal", "title": {"type": "plain_text", "text": "T"},
                                   "blocks": [{"type": "nope"}]}),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_blocks");
        assert!(check_view(&json!({"type": "home", "blocks": []})).is_ok());
    }
}
