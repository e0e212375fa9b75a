//! Action parameters: st2's `key=value` command-line grammar, `--parameters` JSON, and the
//! validation that runs before anything is sent.
//!
//! Raw input is split first ([`parse_cli`]), then typed and checked against the action
//! ([`validate`]). Conversion follows `st2 run`: integers, `true`/`false`, JSON or `k=v,k2=v2`
//! for objects, JSON or comma lists for arrays, `@key=path` reads a file. Slack timestamps are
//! kept as their exact text, so `1700000000.000240` stays exactly that.
//!
//! Every value the original st2 pack accepted stays accepted: where a parameter's declared st2
//! type is wider than slackctl's own ([`Param::declared`] vs [`Param::ty`]), both forms are
//! taken and normalised to the wire form: a comma string or JSON text for a list, a number for
//! a timestamp (written back with Slack's six decimals), an integer or boolean for a string,
//! and text that cannot be read as the narrower type is passed on as the string it was.

use crate::catalog::{Action, GroupKind, Param, ParamType};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Parameters as given, before typing: name → raw values (repeats allowed for arrays).
#[derive(Debug, Default)]
pub struct RawParams {
    /// `key=value` pairs in order.
    pub pairs: Vec<(String, RawValue)>,
    /// Values from `--parameters` (already JSON).
    pub json: Map<String, Value>,
}

#[derive(Debug)]
pub enum RawValue {
    /// Text from the command line, converted by the parameter's type.
    Text(String),
}

/// Splits `key=value` and `@key=path` tokens. Reading files happens here, so a missing file
/// is a usage error before anything is sent.
pub fn parse_cli(tokens: &[String]) -> Result<RawParams> {
    let mut raw = RawParams::default();
    for t in tokens {
        let Some((key, value)) = t.split_once('=') else {
            return Err(Error::usage(format!("expected key=value, got `{t}`"))
                .hint("parameters are written as name=value, e.g. channel=C123 text=hello; quote values with spaces"));
        };
        let (key, value) = if let Some(k) = key.strip_prefix('@') {
            // Bounded, regular files only (security hook: `/dev/zero` must not hang).
            let text =
                crate::limits::read_text_file(&format!("@{k}"), std::path::Path::new(value))?;
            (k.to_string(), text)
        } else {
            (key.to_string(), value.to_string())
        };
        if key.is_empty() {
            return Err(Error::usage(format!("parameter name missing in `{t}`")));
        }
        raw.pairs.push((key, RawValue::Text(value)));
    }
    Ok(raw)
}

/// Parses `--parameters` text: a JSON object, or st2's `{"parameters": {...}}` wrapper.
pub fn parse_json_params(text: &str, action: &Action) -> Result<Map<String, Value>> {
    let v: Value = serde_json::from_str(text.trim())
        .map_err(|e| Error::usage(format!("--parameters is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = v else {
        return Err(Error::usage(
            "--parameters must be a JSON object of parameter names to values",
        ));
    };
    if obj.len() == 1
        && action.param("parameters").is_none()
        && let Some(Value::Object(inner)) = obj.get("parameters")
    {
        let inner = inner.clone();
        obj = inner;
    }
    Ok(obj)
}

/// Options that relax validation.
#[derive(Debug, Default, Clone, Copy)]
pub struct ValidateOpts {
    /// Pass parameters the catalog does not know (newer than our table) as given.
    pub allow_unknown: bool,
}

/// Types, checks and completes the parameters. The result holds every parameter that has a
/// value (given or a real st2 default); unset ones are absent, so they are never sent.
pub fn validate(action: &Action, raw: RawParams, opts: ValidateOpts) -> Result<Map<String, Value>> {
    // Secrets first, so that no error below can echo one (security hook).
    crate::redact::register_params(
        action,
        raw.pairs
            .iter()
            .map(|(k, RawValue::Text(v))| (k.as_str(), v.as_str())),
        &raw.json,
    );
    let mut out = Map::new();
    let mut problems: Vec<Error> = Vec::new();

    // JSON values first; `key=value` pairs override them.
    for (k, v) in raw.json {
        if v.is_null() {
            continue; // st2 passes None for unset parameters
        }
        match action.param(&k) {
            Some(p) => match coerce_param(p, v, action.is_generic()) {
                Ok(v) => {
                    out.insert(k, v);
                }
                Err(e) => problems.push(e),
            },
            None if opts.allow_unknown => {
                out.insert(k, v);
            }
            None => problems.push(unknown_param(action, &k)),
        }
    }
    let mut seen_cli: Vec<String> = Vec::new();
    for (k, RawValue::Text(text)) in raw.pairs {
        let Some(p) = action.param(&k) else {
            if opts.allow_unknown {
                out.insert(k, Value::String(text));
            } else {
                problems.push(unknown_param(action, &k));
            }
            continue;
        };
        match convert_param(p, &text) {
            Ok(v) => {
                let repeated = seen_cli.contains(&k);
                if repeated && p.ty == ParamType::Array {
                    if let (Some(Value::Array(existing)), Value::Array(more)) = (out.get_mut(&k), v)
                    {
                        existing.extend(more);
                    }
                } else if repeated {
                    problems.push(Error::usage(format!(
                        "parameter `{k}` is given more than once"
                    )));
                } else {
                    out.insert(k.clone(), v);
                }
                seen_cli.push(k);
            }
            Err(e) => problems.push(e),
        }
    }

    // Immutable parameters may not be overridden (st2 refuses too).
    let overridden: Vec<&str> = action
        .params
        .iter()
        .filter(|p| p.immutable)
        .filter(|p| match (out.get(p.name), p.default) {
            (Some(v), Some(d)) => serde_json::from_str::<Value>(d).ok().as_ref() != Some(v),
            (Some(_), None) => true,
            _ => false,
        })
        .map(|p| p.name)
        .collect();
    if !overridden.is_empty() {
        problems.push(
            Error::usage(format!(
                "parameter(s) {} of {} cannot be overridden: they are immutable",
                overridden.join(", "),
                action.name
            ))
            .hint("run the action that calls the method you want instead, e.g. `slackctl run <method>`"),
        );
    }

    // Values given empty (`channel=`, `blocks=[]`) do not satisfy a requirement: Slack would
    // refuse them after the fact, or post an empty message (security hook, issue 13).
    let blank: Vec<String> = out
        .iter()
        .filter(|(_, v)| is_blank(v))
        .map(|(k, _)| k.clone())
        .collect();

    // Real st2 defaults (never Slack's documentation defaults, which are not in the table).
    for p in action.params {
        if !out.contains_key(p.name)
            && let Some(d) = p.default
            && let Ok(v) = serde_json::from_str::<Value>(d)
        {
            out.insert(p.name.to_string(), v);
        }
    }

    // The verb is slackctl's own switch: any spelling of GET or POST, nothing else. (The
    // YAML carries no enum for it, since the original pack had none and st2 must not refuse
    // `get`.)
    if let Some(v) = out.get("http_method")
        && !v
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("GET") || s.eq_ignore_ascii_case("POST"))
    {
        problems.push(Error::usage(format!(
            "invalid value `{}` for http_method: expected GET or POST",
            v.as_str().map_or_else(|| v.to_string(), str::to_string)
        )));
    }

    // Enumerations.
    for p in action.params.iter().filter(|p| !p.enum_values.is_empty()) {
        if let Some(Value::String(s)) = out.get(p.name)
            && !p.enum_values.contains(&s.as_str())
        {
            problems.push(Error::usage(format!(
                "invalid value `{s}` for {}: expected one of {}",
                p.name,
                p.enum_values.join(", ")
            )));
        }
    }

    let missing: Vec<&str> = action
        .params
        .iter()
        .filter(|p| p.required && !out.contains_key(p.name))
        .map(|p| p.name)
        .collect();
    let empty: Vec<&str> = action
        .params
        .iter()
        .filter(|p| p.required && blank.iter().any(|b| b == p.name))
        .map(|p| p.name)
        .collect();
    if !empty.is_empty() {
        problems.push(Error::usage(format!(
            "required parameter{} {} of {} {} empty",
            if empty.len() > 1 { "s" } else { "" },
            empty.join(", "),
            action.name,
            if empty.len() > 1 { "are" } else { "is" },
        )));
    }
    if !missing.is_empty() {
        problems.push(
            Error::usage(format!(
                "missing required parameter{} for {}: {}",
                if missing.len() > 1 { "s" } else { "" },
                action.name,
                missing.join(", ")
            ))
            .hint(format!("see `slackctl run {} --help`", action.name)),
        );
    }

    for g in action.arg_groups {
        let set: Vec<&str> = g
            .args
            .iter()
            .copied()
            .filter(|a| out.contains_key(*a) && !blank.iter().any(|b| b == a))
            .collect();
        let empty: Vec<&str> = g
            .args
            .iter()
            .copied()
            .filter(|a| blank.iter().any(|b| b == a))
            .collect();
        let list = g.args.join(", ");
        let bad = match g.kind {
            GroupKind::OneOf if set.is_empty() && !empty.is_empty() => Some(format!(
                "{} needs at least one of: {list} ({} given empty)",
                action.name,
                empty.join(", ")
            )),
            GroupKind::OneOf if set.is_empty() => {
                Some(format!("{} needs at least one of: {list}", action.name))
            }
            GroupKind::AtMostOne if set.len() > 1 => Some(format!(
                "{} accepts only one of {list} (got {})",
                action.name,
                set.join(", ")
            )),
            GroupKind::ExactlyOne if set.len() != 1 => {
                Some(format!("{} needs exactly one of: {list}", action.name))
            }
            _ => None,
        };
        if let Some(msg) = bad {
            problems.push(Error::usage(msg));
        }
    }

    // Each problem keeps its hints right under it (issue 13).
    match Error::combine(problems) {
        None => Ok(out),
        Some(e) => Err(e),
    }
}

/// An empty or whitespace-only string, an empty list or an empty object.
fn is_blank(v: &Value) -> bool {
    match v {
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn unknown_param(action: &Action, key: &str) -> Error {
    let names = action
        .params
        .iter()
        .filter(|p| !p.immutable)
        .map(|p| p.name);
    let mut e = Error::usage(format!("{} has no parameter `{key}`", action.name));
    if let Some(best) = crate::catalog::suggest_from(key, names, 1).first() {
        e = e.hint(format!("did you mean `{best}`?"));
    }
    e.hint("--allow-unknown-params passes parameters newer than slackctl's table as given")
}

fn type_error(name: &str, ty: ParamType, text: &str, detail: &str) -> Error {
    let shown: String = text.chars().take(80).collect();
    Error::usage(format!(
        "invalid value for {} parameter {name}: `{shown}`{detail}",
        ty.as_str()
    ))
}

/// Converts command-line text by the declared type (st2's rules, stricter where st2 would
/// send something Slack misreads).
pub fn convert_text(name: &str, ty: ParamType, text: &str) -> Result<Value> {
    match ty {
        ParamType::String => Ok(Value::String(text.to_string())),
        ParamType::Integer => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| type_error(name, ty, text, " (expected a whole number)")),
        ParamType::Number => {
            let t = text.trim();
            match serde_json::from_str::<Value>(t) {
                Ok(v @ Value::Number(_)) => Ok(v),
                _ => Err(type_error(name, ty, text, " (expected a number)")),
            }
        }
        ParamType::Boolean => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| type_error(name, ty, text, " (expected true or false)")),
        ParamType::Object => {
            let t = text.trim();
            if t.starts_with('{') {
                match serde_json::from_str::<Value>(t) {
                    Ok(v @ Value::Object(_)) => Ok(v),
                    Ok(_) => Err(type_error(name, ty, text, " (expected a JSON object)")),
                    Err(e) => Err(type_error(
                        name,
                        ty,
                        text,
                        &format!(" (malformed JSON: {e})"),
                    )),
                }
            } else if t.is_empty() {
                Ok(Value::Object(Map::new()))
            } else {
                let mut m = Map::new();
                for pair in t.split(',') {
                    let Some((k, v)) = pair.split_once('=') else {
                        return Err(type_error(
                            name,
                            ty,
                            text,
                            " (expected JSON or k1=v1,k2=v2)",
                        ));
                    };
                    m.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
                }
                Ok(Value::Object(m))
            }
        }
        ParamType::Array => {
            let t = text.trim();
            if t.starts_with('[') {
                return match serde_json::from_str::<Value>(t) {
                    Ok(v @ Value::Array(_)) => Ok(v),
                    Ok(_) => Err(type_error(name, ty, text, " (expected a JSON array)")),
                    Err(e) => Err(type_error(
                        name,
                        ty,
                        text,
                        &format!(" (malformed JSON: {e})"),
                    )),
                };
            }
            if t.starts_with('{') {
                // A single object for a list of objects (e.g. one attachment).
                return match serde_json::from_str::<Value>(t) {
                    Ok(v @ Value::Object(_)) => Ok(Value::Array(vec![v])),
                    _ => Err(type_error(name, ty, text, " (malformed JSON)")),
                };
            }
            if let Ok(n) = t.parse::<i64>() {
                return Ok(Value::Array(vec![Value::from(n)]));
            }
            Ok(Value::Array(
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ))
        }
    }
}

/// Converts command-line text for one parameter: timestamps stay text; text for a parameter
/// the st2 pack declared as a string is passed on unchanged when it is not the narrower type.
pub fn convert_param(p: &Param, text: &str) -> Result<Value> {
    if p.timestamp {
        return Ok(Value::String(text.to_string()));
    }
    // A JSON-valued list the pack typed as a string (blocks, attachments): text that is not
    // JSON is not a list of words either, so it goes on as given.
    if p.ty == ParamType::Array
        && p.declared == ParamType::String
        && !p.comma_list
        && !text.trim_start().starts_with(['[', '{'])
    {
        crate::log::warn(&format!(
            "{}: not JSON; sent as the text given (Slack expects a JSON array)",
            p.name
        ));
        return Ok(Value::String(text.to_string()));
    }
    convert_text(p.name, p.ty, text).or_else(|e| lenient_string(p, text, e))
}

/// Checks a JSON value (from `--parameters`, i.e. from st2) for one parameter, with the same
/// leniency as [`convert_param`] and a number for a timestamp written as Slack's text.
pub fn coerce_param(p: &Param, v: Value, generic: bool) -> Result<Value> {
    if p.timestamp {
        return match v {
            Value::String(s) => Ok(Value::String(s)),
            Value::Number(n) => Ok(Value::String(ts_text(&n))),
            other => Err(type_error(
                p.name,
                p.ty,
                &other.to_string(),
                " (expected a Slack timestamp)",
            )),
        };
    }
    // A secret (a token, a client secret) travels in a header or as one opaque string: any
    // other JSON is a mistake, refused without echoing what was given.
    if p.secret && !v.is_string() {
        return Err(type_error(
            p.name,
            ParamType::String,
            "(hidden)",
            " (a secret must be given as text)",
        ));
    }
    match v {
        Value::String(s) => convert_param(p, &s),
        // slack_sdk puts a number or boolean given for a text argument on the wire as such
        // (1/0 and decimal text in forms, native in JSON); generic actions do the same.
        v @ (Value::Number(_) | Value::Bool(_)) if generic && p.ty == ParamType::String => Ok(v),
        v => coerce_json(p.name, p.ty, v),
    }
}

/// The fallback for the pack's string parameters: st2 accepted any text there, so slackctl
/// does too and lets Slack judge it. Broken JSON (text that starts like JSON but does not
/// parse) stays an error: Slack refuses it in every case, so exit 2 saves a call.
fn lenient_string(p: &Param, text: &str, e: Error) -> Result<Value> {
    if p.declared == ParamType::String
        && p.ty != ParamType::String
        && !text.trim_start().starts_with(['[', '{'])
    {
        crate::log::warn(&format!(
            "{}: `{}` is not a valid {}; sent as the text given",
            p.name,
            text.chars().take(40).collect::<String>(),
            p.ty.as_str()
        ));
        Ok(Value::String(text.to_string()))
    } else {
        Err(e)
    }
}

/// A timestamp given as a number, written as Slack writes it: seconds, a dot, six digits.
/// st2 casts a `number` parameter to a float, which prints `1700000000.000240` back as
/// `1700000000.00024`; padding the decimal text restores the exact ts without any float
/// arithmetic. Only numbers with more than six decimals or an exponent go through `f64`.
pub fn ts_text(n: &serde_json::Number) -> String {
    let text = n.to_string();
    let plain = !text.contains(['e', 'E']);
    match text.split_once('.') {
        None if plain => format!("{text}.000000"),
        Some((int, frac)) if plain && frac.len() <= 6 => format!("{int}.{frac:0<6}"),
        _ => format!("{:.6}", n.as_f64().unwrap_or(0.0)),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Checks a JSON value against the declared type; strings are converted as on the command
/// line (so `"blocks": "[...]"` and a ts given as a JSON number keep working).
pub fn coerce_json(name: &str, ty: ParamType, v: Value) -> Result<Value> {
    match (ty, v) {
        (_, Value::String(s)) if ty != ParamType::String => convert_text(name, ty, &s),
        (ParamType::String, Value::String(s)) => Ok(Value::String(s)),
        // A number or boolean for a string parameter: its text (hand-written actions read
        // strings). Generic actions keep it native (see coerce_param), as slack_sdk sends it.
        (ParamType::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (ParamType::String, Value::Bool(b)) => Ok(Value::String(b.to_string())),
        // Structured input for a string parameter (Slack's table or the SDKs say text, the
        // caller has the JSON): sent as JSON text, not refused.
        (ParamType::String, v @ (Value::Array(_) | Value::Object(_))) => {
            Ok(Value::String(v.to_string()))
        }
        (ParamType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Value::Number(n)),
        (ParamType::Number, Value::Number(n)) => Ok(Value::Number(n)),
        (ParamType::Boolean, Value::Bool(b)) => Ok(Value::Bool(b)),
        (ParamType::Array, v @ Value::Array(_)) => Ok(v),
        (ParamType::Array, v @ Value::Object(_)) => Ok(Value::Array(vec![v])),
        (ParamType::Object, v @ Value::Object(_)) => Ok(v),
        (ty, other) => Err(type_error(name, ty, &other.to_string(), "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find;

    fn run(action: &str, args: &[&str]) -> Result<Map<String, Value>> {
        let a = find(action).unwrap();
        let raw = parse_cli(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        validate(a, raw, ValidateOpts::default())
    }

    #[test]
    fn converts_by_type_and_keeps_ts_text() {
        let v = run(
            "chat.postMessage",
            &[
                "channel=C1",
                "text=hi",
                "unfurl_links=TRUE",
                "thread_ts=1700000000.000240",
                "blocks=[{\"type\":\"divider\"}]",
            ],
        )
        .unwrap();
        assert_eq!(v["unfurl_links"], Value::Bool(true));
        assert_eq!(v["thread_ts"], Value::String("1700000000.000240".into()));
        assert!(v["blocks"].is_array());
        assert_eq!(v["http_method"], "POST");
    }

    #[test]
    fn rejects_bad_input_before_sending() {
        assert!(
            run("chat.postMessage", &["text=hi"])
                .unwrap_err()
                .message
                .contains("channel")
        );
        assert!(
            run("chat.postMessage", &["channel=C1"])
                .unwrap_err()
                .message
                .contains("at least one of")
        );
        assert!(
            run(
                "chat.postMessage",
                &["channel=C1", "text=x", "unfurl_links=maybe"]
            )
            .is_err()
        );
        assert!(
            run("chat.postMessage", &["channel=C1", "text=x", "metadata={"])
                .unwrap_err()
                .message
                .contains("malformed")
        );
        let e = run("chat.postMessage", &["channel=C1", "txt=x"]).unwrap_err();
        // The hint stands under its own error, inside the combined message.
        assert!(
            e.message
                .contains("has no parameter `txt`\n  hint: did you mean `text`?"),
            "{}",
            e.message
        );
        assert!(
            run(
                "chat.postMessage",
                &["channel=C1", "text=x", "end_point=chat.delete"]
            )
            .unwrap_err()
            .message
            .contains("immutable")
        );
        assert!(run("conversations.list", &["limit=ten"]).is_err());
        assert!(run("chat.postMessage", &["channel"]).is_err());
    }

    #[test]
    fn arrays_objects_and_repeats() {
        let v = run(
            "admin.users.invite",
            &[
                "team_id=T1",
                "email=a@b.c",
                "channel_ids=C1, C2",
                "channel_ids=C3",
            ],
        )
        .unwrap();
        assert_eq!(v["channel_ids"], serde_json::json!(["C1", "C2", "C3"]));
        let v = run("users_filter_by", &["attributes=is_admin=true,name=bo*"]).unwrap();
        assert_eq!(v["attributes"]["name"], "bo*");
        let v = run("users_filter_by", &[]).unwrap();
        assert_eq!(v["attributes"], serde_json::json!({}));
    }

    #[test]
    fn timestamps_given_as_numbers_get_slacks_six_decimals() {
        let n = |t: &str| serde_json::from_str::<serde_json::Number>(t).unwrap();
        assert_eq!(ts_text(&n("1700000000.00024")), "1700000000.000240");
        assert_eq!(ts_text(&n("1700000000.000240")), "1700000000.000240");
        assert_eq!(ts_text(&n("1700000000.1")), "1700000000.100000");
        assert_eq!(ts_text(&n("0")), "0.000000");
        assert_eq!(ts_text(&n("0.0")), "0.000000");
        assert_eq!(ts_text(&n("1.7e9")), "1700000000.000000");
        // Python's repr of the float st2 makes of each ts round-trips through the padding.
        for micros in [0u64, 1, 10, 240, 100_000, 999_999, 123_456] {
            for secs in [1_500_000_000u64, 1_700_000_000, 2_100_000_000] {
                let exact = format!("{secs}.{micros:06}");
                let f: f64 = exact.parse().unwrap();
                // Rust's shortest round-trip printing equals Python's repr for these floats.
                let shortest = format!("{f:?}");
                assert_eq!(ts_text(&n(&shortest)), exact, "{shortest}");
            }
        }
    }

    #[test]
    fn values_the_original_pack_accepted_are_accepted_and_normalised() {
        let a = find("chat.postMessage").unwrap();
        let json = parse_json_params(
            r#"{"channel": "C1", "text": "x", "thread_ts": 1700000000.00024, "as_user": "true",
                "blocks": "[{\"type\": \"divider\"}]", "attachments": "not json at all"}"#,
            a,
        )
        .unwrap();
        let v = validate(
            a,
            RawParams {
                pairs: vec![],
                json,
            },
            ValidateOpts::default(),
        )
        .unwrap();
        assert_eq!(v["thread_ts"], "1700000000.000240");
        assert_eq!(v["as_user"], true);
        assert_eq!(v["blocks"], serde_json::json!([{"type": "divider"}]));
        // st2 took any text for a string-typed parameter; Slack judges it, not slackctl.
        assert_eq!(v["attachments"], "not json at all");
        let v = run(
            "conversations.list",
            &["types=public_channel,private_channel"],
        )
        .unwrap();
        assert_eq!(
            v["types"],
            serde_json::json!(["public_channel", "private_channel"])
        );
        let v = run("conversations.history", &["channel=C1", "oldest=0"]).unwrap();
        assert_eq!(v["oldest"], "0");
    }

    #[test]
    fn json_parameters_accept_st2_wrapper_and_nulls() {
        let a = find("chat.postMessage").unwrap();
        let json = parse_json_params(r#"{"parameters": {"channel": "C1", "text": "x", "ts": null, "thread_ts": 1700000000.000240, "icon_url": null}}"#, a).unwrap();
        let v = validate(
            a,
            RawParams {
                pairs: vec![],
                json,
            },
            ValidateOpts::default(),
        )
        .unwrap();
        assert_eq!(v["thread_ts"], "1700000000.000240");
        assert!(!v.contains_key("icon_url"));
    }
}
