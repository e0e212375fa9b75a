//! The on-disk shape of one StackStorm action file (`actions/<name>.yaml`).
//!
//! This file is shared three ways: `build.rs` includes it (with `#[path]`) to compile the
//! YAML table into the binary, the importer uses it to read descriptions back and to write
//! files, and tests use it to check the table. Keep it free of crate-internal imports.
//!
//! st2 rejects unknown top-level keys in action metadata, so everything slackctl adds per
//! action (tier, scopes, status, ...) travels in st2's own `tags` list of `{name, value}`.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One action file as st2 reads it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionFile {
    pub name: String,
    pub runner_type: String,
    pub entry_point: String,
    pub description: String,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamFile>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

fn enabled_default() -> bool {
    true
}

/// One parameter: a draft-4 JSON-schema fragment plus st2's `immutable` and `secret`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParamFile {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub immutable: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default, rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    #[serde(default)]
    pub items: Option<Items>,
}

/// `items` of an array parameter (only the element type is used).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Items {
    #[serde(rename = "type")]
    pub ty: String,
}

/// st2's tag: a free-form name/value pair attached to the action.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub name: String,
    pub value: String,
}

/// The parameter types st2 knows (draft-4 JSON-schema names).
pub const PARAM_TYPES: &[&str] = &["string", "integer", "number", "boolean", "array", "object"];

/// Tag names slackctl understands. Anything else in `tags` is kept but ignored.
pub mod tag {
    /// Slack method the action calls (`chat.postMessage`), or `webhook` for webhook actions.
    pub const METHOD: &str = "method";
    /// `current`, `deprecated`, `retired`, `undocumented` or `sdk_only`.
    pub const STATUS: &str = "status";
    /// Rate-limit tier: `1`..`4`, `special`, or `unknown`.
    pub const TIER: &str = "tier";
    /// Slack's preferred HTTP verb.
    pub const HTTP_VERB: &str = "http_verb";
    /// `json` when the method accepts a JSON body, else `form`.
    pub const BODY: &str = "body";
    /// Token kinds the method accepts: comma list of `bot`, `user`, or `none`.
    pub const TOKENS: &str = "tokens";
    pub const SCOPES_BOT: &str = "scopes_bot";
    pub const SCOPES_USER: &str = "scopes_user";
    /// The method's page in Slack's reference.
    pub const DOCS: &str = "docs";
    /// What to call instead, for retired and deprecated methods.
    pub const REPLACEMENT: &str = "replacement";
    /// Why the action is retired or deprecated, in our words.
    pub const NOTE: &str = "note";
    /// One-of groups: `one_of:a,b,c;at_most_one:a,b`.
    pub const ARG_GROUPS: &str = "arg_groups";
    /// List parameters Slack takes as one comma-separated string, in JSON bodies too.
    pub const COMMA_LISTS: &str = "comma_lists";
    /// slackctl's own type for parameters whose declared st2 `type` is kept wider for
    /// compatibility with the original pack: `name:type,...`, where type is an st2 type name
    /// or `timestamp` (a Slack ts: exact text, numbers written back with six decimals).
    pub const WIRE_TYPES: &str = "wire_types";
    /// Parameters sent as JSON text in a form even when they are lists of plain values.
    pub const JSON_TEXT: &str = "json_text";
    /// Whose wire form the method follows when it is not slack_sdk's: `node` (only Node's
    /// SDK knows it: lists and objects as JSON text, booleans as true/false) or `none`.
    pub const SDK: &str = "sdk";
    /// `basic`: client_id and client_secret travel as HTTP Basic credentials.
    pub const CLIENT_AUTH: &str = "client_auth";
}

impl ActionFile {
    /// The value of tag `name`, if present.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.value.as_str())
    }

    /// Parameter names in st2's display order: `end_point`, `http_method`, then by name.
    pub fn ordered_params(&self) -> Vec<(&String, &ParamFile)> {
        let mut v: Vec<_> = self.parameters.iter().collect();
        v.sort_by_key(|(n, _)| (param_rank(n), n.to_string()));
        v
    }
}

/// Sort rank that puts st2's two fixed parameters first.
pub fn param_rank(name: &str) -> u8 {
    match name {
        "end_point" => 0,
        "http_method" => 1,
        _ => 2,
    }
}
