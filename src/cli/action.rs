//! `slackctl action list|get`: the catalog shown as `st2 action list -p slack` and
//! `st2 action get slack.<name>` show it.

use crate::catalog::{self, Action};
use crate::error::{Error, Result};
use crate::output::{self, Fit, Format, Out};
use clap::Subcommand;
use serde_json::{Map, Value, json};

#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// List actions: ref | pack | description, sorted as st2 sorts them
    List {
        /// Only show actions whose name starts with or contains this text
        filter: Option<String>,
        /// Pack to list (only `slack` exists)
        #[arg(short, long, default_value = "slack")]
        pack: String,
        /// Print JSON (an array of action objects)
        #[arg(short, long, conflicts_with = "yaml")]
        json: bool,
        /// Print YAML
        #[arg(short, long)]
        yaml: bool,
        /// Only actions with this status (current, deprecated, retired, undocumented, sdk_only)
        #[arg(long, value_parser = super::args::status)]
        status: Option<String>,
    },
    /// Show one action: `chat.postMessage` or `slack.chat.postMessage`
    Get {
        reference: String,
        #[arg(short, long, conflicts_with = "yaml")]
        json: bool,
        #[arg(short, long)]
        yaml: bool,
    },
}

pub fn run(cmd: ActionCommand) -> Result<u8> {
    let mut out = Out::new();
    match cmd {
        ActionCommand::List {
            filter,
            pack,
            json,
            yaml,
            status,
        } => {
            if pack != catalog::PACK {
                return Err(Error::usage(format!(
                    "unknown pack `{pack}`: slackctl provides only `slack`"
                )));
            }
            let matches: Vec<&Action> = catalog::all()
                .iter()
                .filter(|a| filter.as_deref().is_none_or(|f| matches_filter(a.name, f)))
                .filter(|a| status.as_deref().is_none_or(|s| a.status.as_str() == s))
                .collect();
            if json || yaml {
                let v = Value::Array(matches.iter().map(|a| action_json(a)).collect());
                out.value(&v, if json { Format::Json } else { Format::Yaml });
            } else if out.tty {
                let rows: Vec<Vec<String>> = matches
                    .iter()
                    .map(|a| vec![a.reference(), catalog::PACK.into(), list_description(a)])
                    .collect();
                let width = output::terminal_width();
                out.write_str(&output::table(
                    &["ref", "pack", "description"],
                    &rows,
                    width,
                    Fit::Truncate,
                ));
            } else {
                let mut s = String::with_capacity(matches.len() * 100);
                for a in &matches {
                    s.push_str(&a.reference());
                    s.push('\t');
                    s.push_str(catalog::PACK);
                    s.push('\t');
                    s.push_str(&output::tsv_cell(&list_description(a)));
                    s.push('\n');
                }
                out.write_str(&s);
            }
            Ok(crate::exit::SUCCESS)
        }
        ActionCommand::Get {
            reference,
            json,
            yaml,
        } => {
            let action = find_or_suggest(&reference)?;
            if json || yaml {
                out.value(
                    &action_json(action),
                    if json { Format::Json } else { Format::Yaml },
                );
            } else {
                let rows = property_rows(action);
                if out.tty {
                    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
                    let width = output::terminal_width();
                    out.write_str(&output::table(
                        &["Property", "Value"],
                        &rows,
                        width,
                        Fit::Wrap,
                    ));
                } else {
                    for [k, v] in rows {
                        out.write_str(&format!("{k}\t{}\n", output::tsv_cell(&v)));
                    }
                }
            }
            Ok(crate::exit::SUCCESS)
        }
    }
}

fn matches_filter(name: &str, filter: &str) -> bool {
    let f = filter
        .strip_prefix("slack.")
        .unwrap_or(filter)
        .to_ascii_lowercase();
    name.to_ascii_lowercase().contains(&f)
}

fn list_description(a: &Action) -> String {
    match a.status {
        catalog::Status::Current => a.description.to_string(),
        s => format!("[{}] {}", s.as_str(), a.description),
    }
}

/// Finds an action or fails with exit 2 and the nearest names.
pub fn find_or_suggest(reference: &str) -> Result<&'static Action> {
    catalog::find(reference).ok_or_else(|| {
        let mut e = Error::usage(format!("Action \"{reference}\" is not found."));
        let near = catalog::suggest(reference, 3);
        if !near.is_empty() {
            e = e.hint(format!("did you mean: {}", near.join(", ")));
        }
        e.hint("`slackctl action list <text>` searches the catalog")
    })
}

/// The action as st2's API shows it, plus slackctl's metadata under `slackctl`.
pub fn action_json(a: &Action) -> Value {
    let mut params = Map::new();
    for p in a.params {
        let mut o = Map::new();
        // st2 shows the declared type; slackctl's narrower one is in the wire_types tag.
        o.insert("type".into(), json!(p.declared.as_str()));
        o.insert("required".into(), json!(p.required));
        o.insert(
            "default".into(),
            p.default
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null),
        );
        o.insert("immutable".into(), json!(p.immutable));
        o.insert("description".into(), json!(p.description));
        if p.secret {
            o.insert("secret".into(), json!(true));
        }
        if !p.enum_values.is_empty() {
            o.insert("enum".into(), json!(p.enum_values));
        }
        params.insert(p.name.into(), Value::Object(o));
    }
    json!({
        "uid": a.uid(),
        "ref": a.reference(),
        "pack": catalog::PACK,
        "name": a.name,
        "description": a.description,
        "enabled": a.enabled,
        "entry_point": a.entry_point,
        "runner_type": a.runner_type,
        "parameters": params,
        "tags": a.tags.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "slackctl": metadata(a),
    })
}

fn metadata(a: &Action) -> Value {
    json!({
        "method": a.method,
        "status": a.status.as_str(),
        "replacement": a.replacement,
        "note": a.note,
        "tier": a.tier.as_str(),
        "http_verb": a.http_verb.as_str(),
        "json_body": a.json_body,
        "tokens": a.tokens,
        "scopes": {"bot": a.scopes_bot, "user": a.scopes_user},
        "docs": a.docs_url(),
    })
}

/// The Property/Value view. Parameters get one row each in words (JSON only with --json),
/// so a piped `action get` stays one record per line.
fn property_rows(a: &Action) -> Vec<[String; 2]> {
    let mut rows = vec![
        ["uid".into(), a.uid()],
        ["ref".into(), a.reference()],
        ["pack".into(), catalog::PACK.into()],
        ["name".into(), a.name.into()],
        ["description".into(), a.description.into()],
        ["enabled".into(), a.enabled.to_string()],
        ["entry_point".into(), a.entry_point.into()],
        ["runner_type".into(), a.runner_type.into()],
    ];
    for p in a.params {
        rows.push([format!("parameters.{}", p.name), param_summary(p)]);
    }
    rows.push(["status".into(), a.status.as_str().into()]);
    if let Some(r) = a.replacement {
        rows.push(["replacement".into(), r.into()]);
    }
    if let Some(n) = a.note {
        rows.push(["note".into(), n.into()]);
    }
    rows.push(["method".into(), a.method.into()]);
    rows.push(["tier".into(), a.tier.as_str().into()]);
    rows.push(["http_verb".into(), a.http_verb.as_str().into()]);
    rows.push([
        "body".into(),
        if a.json_body { "json" } else { "form" }.into(),
    ]);
    rows.push(["tokens".into(), a.tokens.join(", ")]);
    rows.push(["scopes".into(), scopes_text(a)]);
    if let Some(d) = a.docs_url() {
        rows.push(["docs".into(), d]);
    }
    rows
}

/// One parameter in words: "string, required: …" / "integer, default 100: …".
fn param_summary(p: &catalog::Param) -> String {
    let mut s = p.ty.as_str().to_string();
    if p.required {
        s.push_str(", required");
    }
    if let Some(d) = p.default {
        s.push_str(&format!(", default {d}"));
    }
    if p.immutable {
        s.push_str(", immutable");
    }
    if p.secret {
        s.push_str(", secret");
    }
    if !p.enum_values.is_empty() {
        s.push_str(&format!(", one of {}", p.enum_values.join("|")));
    }
    if !p.description.is_empty() {
        s.push_str(": ");
        s.push_str(p.description);
    }
    s
}

fn scopes_text(a: &Action) -> String {
    let mut parts = Vec::new();
    if !a.scopes_bot.is_empty() {
        parts.push(format!("bot: {}", a.scopes_bot.join(", ")));
    }
    if !a.scopes_user.is_empty() {
        parts.push(format!("user: {}", a.scopes_user.join(", ")));
    }
    parts.join("; ")
}
