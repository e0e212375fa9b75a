//! The action catalog: every Slack Web API method plus the hand-written actions, as st2
//! actions. The table itself is compiled from `actions/*.yaml` by `build.rs`; this module holds
//! the types and the lookups. It knows nothing about HTTP or configuration.

pub mod schema;

/// Parameter types, as st2 names them (JSON-schema draft 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
        }
    }
}

/// Where a method stands with Slack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Current,
    /// Still answered by Slack, but Slack asks callers to move on.
    Deprecated,
    /// Switched off by Slack; kept so st2 workflows naming it still resolve.
    Retired,
    /// Never documented by Slack (e.g. `users.admin.invite`).
    Undocumented,
    /// Known only from Slack's SDKs.
    SdkOnly,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::Deprecated => "deprecated",
            Status::Retired => "retired",
            Status::Undocumented => "undocumented",
            Status::SdkOnly => "sdk_only",
        }
    }
}

/// Slack's rate-limit tiers (requests per minute, per method, per workspace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    T1,
    T2,
    T3,
    T4,
    /// A limit of its own (e.g. `chat.postMessage`: about one per second per channel).
    Special,
    /// Slack publishes none; treated as Tier 2, as Slack's Java SDK does.
    Unknown,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::T1 => "1",
            Tier::T2 => "2",
            Tier::T3 => "3",
            Tier::T4 => "4",
            Tier::Special => "special",
            Tier::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }
}

/// A constraint across several arguments (Slack's "one of these is required" rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// At least one of the arguments must be set.
    OneOf,
    /// No more than one of the arguments may be set.
    AtMostOne,
    /// Exactly one of the arguments must be set.
    ExactlyOne,
}

#[derive(Debug)]
pub struct ArgGroup {
    pub kind: GroupKind,
    pub args: &'static [&'static str],
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    /// The type slackctl validates and encodes by: the best type for Slack's wire form.
    pub ty: ParamType,
    /// The `type` the YAML declares, which is what st2 validates by. It differs from `ty`
    /// only where the original pack declared a wider type that st2 workflows rely on (e.g. a
    /// comma string for a list, a number for a timestamp); slackctl then accepts both.
    pub declared: ParamType,
    /// A Slack timestamp: kept as exact text, numbers written back with six decimals.
    pub timestamp: bool,
    /// A list Slack takes as one comma-separated string (from the `comma_lists` tag); other
    /// arrays hold JSON (blocks, attachments).
    pub comma_list: bool,
    /// Element type of an array parameter.
    pub items: Option<ParamType>,
    pub required: bool,
    /// The st2 default as JSON text; only real defaults are ever written (never Slack's
    /// documentation defaults, which Slack applies itself).
    pub default: Option<&'static str>,
    pub immutable: bool,
    pub secret: bool,
    pub description: &'static str,
    pub enum_values: &'static [&'static str],
}

#[derive(Debug)]
pub struct Action {
    pub name: &'static str,
    pub description: &'static str,
    pub entry_point: &'static str,
    pub runner_type: &'static str,
    pub enabled: bool,
    /// The Slack method called, `webhook` for webhook actions, empty when not known.
    pub method: &'static str,
    pub status: Status,
    pub tier: Tier,
    pub http_verb: Verb,
    /// Whether the method accepts a JSON body (else a form is sent).
    pub json_body: bool,
    /// Token kinds the method accepts (`bot`, `user`, `app`, `config`, `any`, `none`).
    pub tokens: &'static [&'static str],
    pub scopes_bot: &'static [&'static str],
    pub scopes_user: &'static [&'static str],
    pub replacement: Option<&'static str>,
    pub note: Option<&'static str>,
    pub arg_groups: &'static [ArgGroup],
    /// Every st2 tag, as written in the YAML file.
    pub tags: &'static [(&'static str, &'static str)],
    pub params: &'static [Param],
}

include!(concat!(env!("OUT_DIR"), "/catalog.rs"));

/// The pack every action belongs to.
pub const PACK: &str = "slack";

/// The whole table, sorted by name in byte order (st2's sort).
pub fn all() -> &'static [Action] {
    ACTIONS
}

/// Finds an action by `name` or `slack.name`.
pub fn find(reference: &str) -> Option<&'static Action> {
    let name = reference.strip_prefix("slack.").unwrap_or(reference);
    ACTIONS
        .binary_search_by(|a| a.name.as_bytes().cmp(name.as_bytes()))
        .ok()
        .map(|i| &ACTIONS[i])
        .or_else(|| {
            // `slack.` could also be a real prefix of a name; try the reference as given.
            ACTIONS
                .binary_search_by(|a| a.name.as_bytes().cmp(reference.as_bytes()))
                .ok()
                .map(|i| &ACTIONS[i])
        })
}

/// Up to `n` names close to `input`, best first: for "did you mean" hints.
pub fn suggest(input: &str, n: usize) -> Vec<&'static str> {
    let name = input.strip_prefix("slack.").unwrap_or(input);
    suggest_from(name, ACTIONS.iter().map(|a| a.name), n)
}

/// Ranks `candidates` by similarity to `input` (shared by action and parameter hints).
pub fn suggest_from<'a>(
    input: &str,
    candidates: impl Iterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let lower = input.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .map(|c| {
            let cl = c.to_ascii_lowercase();
            let mut s = strsim::jaro_winkler(&lower, &cl);
            if !lower.is_empty() && (cl.contains(&lower) || lower.contains(&cl)) {
                s += 0.1;
            }
            (s, c)
        })
        .filter(|(s, _)| *s >= 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

impl Action {
    /// `slack.<name>`, st2's action ref.
    pub fn reference(&self) -> String {
        format!("{PACK}.{}", self.name)
    }

    /// st2's uid: `action:slack:<name>`.
    pub fn uid(&self) -> String {
        format!("action:{PACK}:{}", self.name)
    }

    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The method's page in Slack's reference, for Web API actions.
    pub fn docs_url(&self) -> Option<String> {
        self.tag("docs").map(str::to_string)
    }

    pub fn tag(&self, name: &str) -> Option<&'static str> {
        self.tags.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    /// True for the generic Web API actions (st2's `run.py`), false for hand-written ones.
    pub fn is_generic(&self) -> bool {
        self.entry_point == "run.py"
    }

    /// Whether the method can be called with no token at all (`api.test`, `oauth.*`).
    pub fn needs_token(&self) -> bool {
        !self.tokens.contains(&"none")
    }

    /// Whether Slack pages this method with `cursor` / `response_metadata.next_cursor`.
    pub fn is_cursor_paginated(&self) -> bool {
        self.param("cursor").is_some()
    }

    /// The immutable `end_point` default, i.e. the Slack method name this action calls.
    pub fn end_point(&self) -> Option<&'static str> {
        self.param("end_point")
            .and_then(|p| p.default)
            .map(|d| d.trim_matches('"'))
    }

    pub fn is_retired_or_deprecated(&self) -> bool {
        !matches!(self.status, Status::Current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sorted_unique_and_well_formed() {
        for w in ACTIONS.windows(2) {
            assert!(
                w[0].name.as_bytes() < w[1].name.as_bytes(),
                "{} / {}",
                w[0].name,
                w[1].name
            );
        }
        for a in ACTIONS {
            assert!(
                a.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'),
                "{}",
                a.name
            );
            let mut names: Vec<_> = a.params.iter().map(|p| p.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(
                names.len(),
                a.params.len(),
                "{} has duplicate parameters",
                a.name
            );
            assert!(!a.description.is_empty(), "{} has no description", a.name);
        }
    }

    #[test]
    fn generic_actions_have_an_immutable_end_point_naming_the_method() {
        for a in ACTIONS.iter().filter(|a| a.is_generic()) {
            let p = a.param("end_point").expect(a.name);
            assert!(p.immutable, "{}", a.name);
            assert_eq!(a.end_point(), Some(a.method), "{}", a.name);
        }
    }

    #[test]
    fn find_accepts_both_spellings() {
        assert_eq!(find("chat.postMessage").unwrap().name, "chat.postMessage");
        assert_eq!(
            find("slack.chat.postMessage").unwrap().name,
            "chat.postMessage"
        );
        assert!(find("chat.postMesage").is_none());
        assert_eq!(suggest("chat.postMesage", 3)[0], "chat.postMessage");
    }

    #[test]
    fn timestamps_are_strings() {
        for a in ACTIONS {
            for p in a.params {
                if matches!(
                    p.name,
                    "ts" | "thread_ts" | "latest" | "oldest" | "timestamp"
                ) {
                    assert_eq!(p.ty, ParamType::String, "{}.{}", a.name, p.name);
                    assert!(
                        p.timestamp,
                        "{}.{} is not marked a timestamp",
                        a.name, p.name
                    );
                }
            }
        }
    }
}
