//! Bulk sends: `slackctl run <action> --each FILE` makes one call per record, with any
//! parameter a Jinja template over the record, `--concurrency` calls in flight within the
//! pacing, and one JSON result line per record. With `--state`, records already sent are
//! skipped (send once) or, with `--mode mirror`, Slack is kept in step with the records:
//! changed records update their message, vanished records delete it.

pub mod records;
pub mod template;

use crate::catalog::{self, Action};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::params::{self, RawParams, RawValue, ValidateOpts};
use crate::run::{RunOptions, call_method};
use crate::store::journal::{Claim, Entry, Journal};
use crate::transport::Client;
use records::{InputFormat, Record};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use template::SharedCache;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Send each record (once, with --state).
    Send,
    /// Keep Slack in step with the records: post new, update changed, delete vanished.
    Mirror,
}

#[derive(Debug, Clone)]
pub struct BulkOptions {
    pub each: String,
    pub format: InputFormat,
    pub concurrency: usize,
    pub id_field: Option<String>,
    pub state: Option<PathBuf>,
    pub mode: Mode,
    pub allow_unknown: bool,
    pub run: RunOptions,
}

/// Totals for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub sent: u64,
    pub updated: u64,
    pub deleted: u64,
    pub skipped: u64,
    pub failed: u64,
}

struct Ctx {
    client: Client,
    action: &'static Action,
    settings: Settings,
    pairs: Vec<(String, String)>,
    json: Map<String, Value>,
    env: minijinja::Environment<'static>,
    cache: SharedCache,
    journal: Option<Mutex<Box<dyn Journal>>>,
    opts: BulkOptions,
    lookups: tokio::sync::Mutex<()>,
}

/// Checks the options before anything is read or sent.
pub fn check(action: &Action, opts: &BulkOptions) -> Result<()> {
    if opts.concurrency == 0 {
        return Err(Error::usage("--concurrency must be at least 1"));
    }
    if opts.state.is_some() && opts.id_field.is_none() {
        return Err(Error::usage(
            "--state needs --id-field: records are recognised by their identifier",
        )
        .hint("e.g. --id-field id"));
    }
    if opts.mode == Mode::Mirror {
        if opts.state.is_none() {
            return Err(Error::usage(
                "--mode mirror needs --state (where sent messages are remembered)",
            ));
        }
        if action.method != "chat.postMessage" {
            return Err(Error::usage(format!(
                "--mode mirror works with chat.postMessage (messages can be updated and deleted), not {}",
                action.name
            )));
        }
    }
    Ok(())
}

/// Runs the bulk send; `emit` receives one result line per record (in completion order).
pub async fn run(
    client: Client,
    action: &'static Action,
    pairs: Vec<(String, String)>,
    json: Map<String, Value>,
    settings: Settings,
    opts: BulkOptions,
    mut emit: impl FnMut(&Value) -> bool,
) -> Result<Summary> {
    check(action, &opts)?;
    let journal = match &opts.state {
        Some(p) => {
            let j = crate::store::journal::open(p, &settings.backend)?;
            let uncertain = j.interrupted();
            if !uncertain.is_empty() {
                crate::log::warn(&format!(
                    "{} record(s) were in flight when the last run on {} stopped; Slack may or may not have them, and they are sent again (so may appear twice): {}",
                    uncertain.len(),
                    crate::store::redis::redacted(&p.to_string_lossy()),
                    uncertain
                        .iter()
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Some(Mutex::new(j))
        }
        None => None,
    };
    let cache = SharedCache::default();
    let ctx = Arc::new(Ctx {
        client,
        action,
        settings,
        pairs,
        json,
        env: template::environment(cache.clone()),
        cache,
        journal,
        opts: opts.clone(),
        lookups: tokio::sync::Mutex::new(()),
    });
    let mut summary = Summary::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut input = records::open(&opts.each, opts.format)?;
    let progress = crate::progress::Progress::start();
    let mut done = 0u64;
    let mut stopped = false;
    // A record that could not be read has no identifier; mirror mode must not take its
    // message for one that vanished.
    let mut unread_input = false;
    let tally =
        |line: &Value, summary: &mut Summary| match line.get("outcome").and_then(Value::as_str) {
            Some("updated") => summary.updated += 1,
            Some("deleted") => summary.deleted += 1,
            Some("skipped") => summary.skipped += 1,
            _ if line["success"] == true => summary.sent += 1,
            _ => summary.failed += 1,
        };
    loop {
        while tasks.len() < opts.concurrency && !stopped {
            let Some(next) = input.next() else { break };
            match next {
                Err(e) => {
                    // A malformed record fails alone; the rest go on.
                    let line = json!({"identifier": null, "success": false, "outcome": "failed", "error": crate::redact::scrub(&e.message)});
                    unread_input = true;
                    tally(&line, &mut summary);
                    stopped |= !emit(&line);
                }
                Ok(rec) => {
                    let id = identifier(&rec, opts.id_field.as_deref());
                    // With a journal, an identifier is one record: a repeat in the same input
                    // is skipped here, before any task could send it beside the first.
                    if ctx.journal.is_some() {
                        if let Some(first) = first_line.get(&id) {
                            let line = json!({"identifier": id, "success": true, "outcome": "skipped", "reason": format!("duplicate: line {} repeats the identifier of line {first}", rec.line)});
                            tally(&line, &mut summary);
                            stopped |= !emit(&line);
                            continue;
                        }
                        first_line.insert(id.clone(), rec.line);
                    }
                    if opts.mode == Mode::Mirror {
                        seen.insert(id.clone());
                    }
                    let ctx = ctx.clone();
                    tasks.spawn(async move { one(&ctx, rec, id).await });
                }
            }
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let line = joined
            .unwrap_or_else(|e| json!({"success": false, "outcome": "failed", "error": format!("internal error: {e}")}));
        tally(&line, &mut summary);
        done += 1;
        if let Some(p) = &progress {
            p.records(done, summary.failed);
        }
        if !emit(&line) {
            stopped = true;
        }
    }
    drop(progress);
    if opts.mode == Mode::Mirror && unread_input && !stopped {
        crate::log::warn(
            "some records could not be read, so no message was deleted this run (a record that failed to read cannot be told apart from one that was removed)",
        );
    }
    if opts.mode == Mode::Mirror && !stopped && !unread_input {
        let gone: Vec<(String, Entry)> = ctx
            .journal
            .as_ref()
            .expect("mirror has a journal")
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .all_sent()?
            .into_iter()
            .filter(|(id, _)| !seen.contains(id))
            .collect();
        for (id, entry) in gone {
            let line = delete(&ctx, &id, &entry).await;
            tally(&line, &mut summary);
            if !emit(&line) {
                break;
            }
        }
    }
    Ok(summary)
}

fn identifier(rec: &Record, field: Option<&str>) -> String {
    match field.and_then(|f| rec.fields.get(f)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => rec.line.to_string(),
        Some(other) => other.to_string(),
    }
}

fn failure(id: &str, e: &Error) -> Value {
    let mut line = json!({"identifier": id, "success": false, "outcome": "failed", "error": crate::redact::scrub(&e.message)});
    if let Some(r) = &e.response {
        line["result"] = (**r).clone();
    }
    // The hints (`did you mean …`, the record's fields) belong with the record they explain.
    if !e.hints.is_empty() {
        line["hints"] = e
            .hints
            .iter()
            .map(|h| Value::String(crate::redact::scrub(h)))
            .collect();
    }
    line
}

/// The message's address for result lines: `channel:ts`, else an id Slack returned.
fn app_identifier(result: &Value) -> Option<String> {
    if let (Some(c), Some(ts)) = (result["channel"].as_str(), result["ts"].as_str()) {
        return Some(format!("{c}:{ts}"));
    }
    for path in [
        &["channel", "id"][..],
        &["file", "id"],
        &["files", "0", "id"],
        &["user", "id"],
        &["id"],
    ] {
        let mut v = result;
        for k in path {
            v = match k.parse::<usize>() {
                Ok(i) => &v[i],
                Err(_) => &v[*k],
            };
        }
        if let Some(s) = v.as_str() {
            return Some(s.to_string());
        }
    }
    None
}

async fn render_all(ctx: &Ctx, rec: &Record) -> Result<Vec<(String, String)>> {
    let render_once = || -> Result<Vec<(String, String)>> {
        ctx.pairs
            .iter()
            .map(|(k, v)| {
                if template::is_template(v) {
                    template::render(&ctx.env, v, &rec.fields, rec.line, k).map(|r| (k.clone(), r))
                } else {
                    Ok((k.clone(), v.clone()))
                }
            })
            .collect()
    };
    let first = render_once()?;
    let (users, channels) = {
        let mut c = ctx.cache.lock().unwrap_or_else(|e| e.into_inner());
        (
            std::mem::take(&mut c.missing_users),
            std::mem::take(&mut c.need_channels),
        )
    };
    if users.is_empty() && !channels {
        return Ok(first);
    }
    resolve(ctx, users, channels).await?;
    render_once()
}

/// Fills the lookup cache: one `users.lookupByEmail` per new address, one paged
/// `conversations.list` per run. Serialised so parallel records do not repeat lookups.
async fn resolve(ctx: &Ctx, users: HashSet<String>, channels: bool) -> Result<()> {
    let _guard = ctx.lookups.lock().await;
    for email in users {
        if ctx
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .users
            .contains_key(&email)
        {
            continue;
        }
        let action = catalog::find("users.lookupByEmail").expect("catalogued");
        let mut p = Map::new();
        p.insert("email".into(), Value::String(email.clone()));
        let answer = match call_method(
            &ctx.client,
            action,
            p,
            &ctx.settings,
            RunOptions::default(),
            None,
        )
        .await
        {
            Ok(v) => v["user"]["id"].as_str().map(str::to_string),
            Err(e) if e.slack_code() == Some("users_not_found") => None,
            Err(e) => return Err(e),
        };
        ctx.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .users
            .insert(email, answer);
    }
    if channels
        && ctx
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .channels
            .is_none()
    {
        let action = catalog::find("conversations.list").expect("catalogued");
        let mut p = Map::new();
        p.insert("types".into(), json!(["public_channel", "private_channel"]));
        let all = call_method(
            &ctx.client,
            action,
            p,
            &ctx.settings,
            RunOptions {
                all: true,
                retry_writes: false,
            },
            None,
        )
        .await?;
        let map = all["channels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c["name"].as_str()?.to_string(),
                    c["id"].as_str()?.to_string(),
                ))
            })
            .collect();
        ctx.cache.lock().unwrap_or_else(|e| e.into_inner()).channels = Some(map);
    }
    Ok(())
}

/// Handles one record: render, validate, then send, update or skip.
async fn one(ctx: &Ctx, rec: Record, id: String) -> Value {
    let skip_sent = ctx.opts.mode == Mode::Send;
    let previous = match &ctx.journal {
        Some(j) => match j.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            Ok(p) => p,
            Err(e) => return failure(&id, &e),
        },
        None => None,
    };
    if skip_sent && let Some(prev) = &previous {
        return json!({"identifier": id, "success": true, "outcome": "skipped", "app_identifier": prev.app_identifier});
    }
    let rendered = match render_all(ctx, &rec).await {
        Ok(r) => r,
        Err(e) => return failure(&id, &e),
    };
    let raw = RawParams {
        pairs: rendered
            .into_iter()
            .map(|(k, v)| (k, RawValue::Text(v)))
            .collect(),
        json: ctx.json.clone(),
    };
    let values = match params::validate(
        ctx.action,
        raw,
        ValidateOpts {
            allow_unknown: ctx.opts.allow_unknown,
        },
    ) {
        Ok(v) => v,
        Err(mut e) => {
            e.message = format!("record {}: {}", rec.line, e.message);
            return failure(&id, &e);
        }
    };
    let hash = content_hash(&values);
    if let Some(prev) = &previous {
        // Mirror mode: unchanged records do nothing; changed ones update their message.
        if prev.hash.as_deref() == Some(hash.as_str()) {
            return json!({"identifier": id, "success": true, "outcome": "skipped", "app_identifier": prev.app_identifier});
        }
        return update(ctx, &id, prev, values, hash).await;
    }
    if let Some(j) = &ctx.journal {
        let claim = j.lock().unwrap_or_else(|e| e.into_inner()).claim(&id);
        match claim {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Sent(prev)) => {
                return json!({"identifier": id, "success": true, "outcome": "skipped", "app_identifier": prev.app_identifier});
            }
            Ok(Claim::Elsewhere) => {
                return json!({"identifier": id, "success": true, "outcome": "skipped", "reason": "another process is sending it"});
            }
            Err(e) => return failure(&id, &e),
        }
    }
    let result = if ctx.action.is_generic() {
        call_method(
            &ctx.client,
            ctx.action,
            values,
            &ctx.settings,
            ctx.opts.run,
            None,
        )
        .await
    } else {
        crate::actions::run(
            &ctx.client,
            ctx.action,
            values,
            &ctx.settings,
            ctx.opts.run,
            None,
        )
        .await
    };
    match result {
        Ok(v) => {
            let app = app_identifier(&v);
            if let Some(j) = &ctx.journal {
                let entry = Entry {
                    channel: v["channel"].as_str().map(str::to_string),
                    ts: v["ts"].as_str().map(str::to_string),
                    hash: Some(hash),
                    app_identifier: app.clone(),
                };
                if let Err(e) = j
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .mark_sent(&id, entry)
                {
                    return failure(&id, &e);
                }
            }
            json!({"identifier": id, "success": true, "outcome": "sent", "app_identifier": app, "result": v})
        }
        Err(e) => {
            // Slack's refusal, or a problem found before sending, means nothing was posted;
            // a network or HTTP failure is ambiguous and stays "in flight".
            let definite = e.response.is_some() || e.kind != crate::error::Kind::Failed;
            if definite && let Some(j) = &ctx.journal {
                let _ = j.lock().unwrap_or_else(|e| e.into_inner()).release(&id);
            }
            failure(&id, &e)
        }
    }
}

/// A stable fingerprint of what would be sent (the token excluded).
fn content_hash(values: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = values.keys().filter(|k| k.as_str() != "token").collect();
    keys.sort();
    let parts: Vec<String> = keys
        .iter()
        .map(|k| format!("{k}={}", values[k.as_str()]))
        .collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    crate::transport::pace::fingerprint(&refs)
}

/// The `channel` and `ts` of a message the journal remembers, as call arguments (or the
/// failure line when the journal lacks them).
fn address(id: &str, prev: &Entry) -> Result<Map<String, Value>, Value> {
    let (Some(channel), Some(ts)) = (&prev.channel, &prev.ts) else {
        return Err(failure(
            id,
            &Error::failed("the state has no channel/ts for this record"),
        ));
    };
    let mut p = Map::new();
    p.insert("channel".into(), Value::String(channel.clone()));
    p.insert("ts".into(), Value::String(ts.clone()));
    Ok(p)
}

async fn update(
    ctx: &Ctx,
    id: &str,
    prev: &Entry,
    values: Map<String, Value>,
    hash: String,
) -> Value {
    let mut p = match address(id, prev) {
        Ok(p) => p,
        Err(line) => return line,
    };
    let action = catalog::find("chat.update").expect("catalogued");
    for k in [
        "text",
        "blocks",
        "attachments",
        "markdown_text",
        "metadata",
        "token",
    ] {
        if let Some(v) = values.get(k) {
            p.insert(k.into(), v.clone());
        }
    }
    match call_method(&ctx.client, action, p, &ctx.settings, ctx.opts.run, None).await {
        Ok(v) => {
            let entry = Entry {
                hash: Some(hash),
                ..prev.clone()
            };
            if let Some(j) = &ctx.journal
                && let Err(e) = j
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .mark_sent(id, entry)
            {
                return failure(id, &e);
            }
            json!({"identifier": id, "success": true, "outcome": "updated", "app_identifier": prev.app_identifier, "result": v})
        }
        Err(e) => failure(id, &e),
    }
}

async fn delete(ctx: &Ctx, id: &str, prev: &Entry) -> Value {
    let p = match address(id, prev) {
        Ok(p) => p,
        Err(line) => return line,
    };
    let action = catalog::find("chat.delete").expect("catalogued");
    let result = call_method(&ctx.client, action, p, &ctx.settings, ctx.opts.run, None).await;
    let gone = match &result {
        Ok(_) => true,
        // Already deleted in Slack: the record is gone either way.
        Err(e) => e.slack_code() == Some("message_not_found"),
    };
    if gone
        && let Some(j) = &ctx.journal
        && let Err(e) = j.lock().unwrap_or_else(|e| e.into_inner()).forget(id)
    {
        return failure(id, &e);
    }
    match result {
        Ok(v) => {
            json!({"identifier": id, "success": true, "outcome": "deleted", "app_identifier": prev.app_identifier, "result": v})
        }
        Err(_) if gone => {
            json!({"identifier": id, "success": true, "outcome": "deleted", "app_identifier": prev.app_identifier})
        }
        Err(e) => failure(id, &e),
    }
}
