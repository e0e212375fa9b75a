//! `slackctl run <action> key=value …`: parse, validate (exit 2 before anything is sent),
//! call, print.

use super::action::find_or_suggest;
use crate::catalog::{Action, GroupKind, Status};
use crate::config::{Env, Flags};
use crate::error::{Error, Result};
use crate::output::{Format, Out, st2_frame};
use crate::params::{self, ValidateOpts};
use crate::run::{RunOptions, call_method};

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Action: `chat.postMessage` or `slack.chat.postMessage`
    pub action: Option<String>,
    /// Parameters as key=value (st2 syntax); @key=path reads a file
    #[arg(value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// All parameters as a JSON object (or st2's {"parameters": {...}}); `-` reads stdin
    #[arg(long, value_name = "JSON")]
    pub parameters: Option<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: Format,
    /// Shorthand for --output json
    #[arg(short = 'j', long = "json", conflicts_with = "output")]
    pub json: bool,
    /// Follow response_metadata.next_cursor through every page and merge the list
    #[arg(long)]
    pub all: bool,
    /// Pass parameters that slackctl's table does not know (newer Slack arguments) as given
    #[arg(long)]
    pub allow_unknown_params: bool,
    /// Resend writes after timeouts and 5xx answers (they may post twice)
    #[arg(long)]
    pub retry_writes: bool,
    /// Bulk: one call per record of this JSON Lines or CSV file (`-` = stdin); parameters may
    /// be Jinja templates over the record, e.g. text="Hi {{ name }}", with the filters
    /// slack_user_by_email, slack_channel_by_name (ids) and slack_mention (id to mention)
    #[arg(long, value_name = "FILE")]
    pub each: Option<String>,
    /// Format of --each input (default: csv for *.csv, else jsonl)
    #[arg(long, value_enum, requires = "each")]
    pub input_format: Option<crate::bulk::records::InputFormat>,
    /// Bulk: calls in flight at once (pacing still applies)
    #[arg(long, default_value_t = 1, requires = "each", value_parser = super::args::concurrency)]
    pub concurrency: usize,
    /// Bulk: the record field that identifies it (default: its line number)
    #[arg(long, value_name = "FIELD", requires = "each")]
    pub id_field: Option<String>,
    /// Bulk: remember what was sent here, so re-runs send only new records (or mirror)
    #[arg(long, value_name = "PATH", requires = "each")]
    pub state: Option<std::path::PathBuf>,
    /// Bulk: `send` (once per record) or `mirror` (update changed, delete vanished records)
    #[arg(long, value_enum, default_value = "send", requires = "each")]
    pub mode: crate::bulk::Mode,
    /// With --all -o jsonl: resume from the cursor saved in this file, and save progress to it
    #[arg(long, value_name = "PATH", requires = "all")]
    pub cursor_file: Option<std::path::PathBuf>,
    /// Turn @name, #channel, @here/@channel/@everyone in `text` into Slack mentions
    /// (chat.* methods, send_dm, broadcast)
    #[arg(long)]
    pub link_mentions: bool,
    /// Show the action's parameters (`slackctl run <action> --help`)
    #[arg(short = 'h', long = "help")]
    pub help: bool,
}

pub fn run(mut args: RunArgs, flags: &Flags, env: &Env, verbose: bool) -> Result<u8> {
    // `--help` may also arrive among the trailing key=value tokens.
    if let Some(i) = args.params.iter().position(|p| p == "--help" || p == "-h") {
        args.params.remove(i);
        args.help = true;
    }
    let Some(reference) = args.action.clone() else {
        let help = super::subcommand_help("run");
        let mut out = Out::new();
        out.write_str(&help);
        return Ok(if args.help {
            crate::exit::SUCCESS
        } else {
            crate::exit::USAGE
        });
    };
    let action = find_or_suggest(&reference)?;
    if args.help {
        let mut out = Out::new();
        out.write_str(&action_help(action));
        return Ok(crate::exit::SUCCESS);
    }
    if let Some(flag) = args.params.iter().find(|p| p.starts_with("--")) {
        return Err(Error::usage(format!("unknown option `{flag}` for run"))
            .hint("options go before the key=value parameters; see `slackctl run --help`"));
    }

    crate::limits::configure_max_file(env.get(crate::config::env::SLACKCTL_MAX_FILE_SIZE))?;
    let mut raw = params::parse_cli(&args.params)?;
    if let Some(p) = &args.parameters {
        let text = if p == "-" {
            crate::limits::read_stdin("--parameters", crate::limits::max_file())?
        } else {
            p.clone()
        };
        raw.json = params::parse_json_params(&text, action)?;
    }
    // Bulk sends validate per record (after rendering); keep the raw text for that.
    let (raw_pairs, raw_json) = if args.each.is_some() {
        let pairs: Vec<(String, String)> = raw
            .pairs
            .iter()
            .map(|(k, params::RawValue::Text(v))| (k.clone(), v.clone()))
            .collect();
        (pairs, raw.json.clone())
    } else {
        (Vec::new(), serde_json::Map::new())
    };
    let mut values = if args.each.is_some() {
        if args.link_mentions {
            return Err(
                Error::usage("--link-mentions does not go with --each yet").hint(
                    "write mentions in the template: {{ email | slack_user_by_email | slack_mention }}",
                ),
            );
        }
        if !args.allow_unknown_params
            && let Some((k, _)) = raw_pairs.iter().find(|(k, _)| action.param(k).is_none())
        {
            let probe = params::parse_cli(&[format!("{k}=")])?;
            return Err(params::validate(action, probe, ValidateOpts::default())
                .err()
                .unwrap_or_else(|| {
                    Error::usage(format!("{} has no parameter `{k}`", action.name))
                }));
        }
        serde_json::Map::new()
    } else {
        params::validate(
            action,
            raw,
            ValidateOpts {
                allow_unknown: args.allow_unknown_params,
            },
        )?
    };
    if args.link_mentions {
        if !action.is_generic() && action.param("link_mentions").is_some() {
            values.insert("link_mentions".into(), serde_json::Value::Bool(true));
        } else if !crate::actions::mentions::applies_to(action) {
            return Err(
                Error::usage(format!("--link-mentions does not apply to {}", action.name))
                    .hint("it works with chat.* methods that take text, send_dm and broadcast"),
            );
        }
    }
    let settings = crate::config::resolve(flags, env)?;
    let format = if args.json { Format::Json } else { args.output };

    let client = crate::run::client(&settings, verbose)?;
    let opts = RunOptions {
        all: args.all,
        retry_writes: args.retry_writes,
    };
    let rt = super::runtime()?;
    let mut out = Out::new();
    if args.cursor_file.is_some() && format != Format::Jsonl {
        return Err(Error::usage(
            "--cursor-file streams pages: use it with --output jsonl",
        ));
    }
    if let Some(each) = args.each.clone() {
        return bulk(
            &args, each, action, raw_pairs, raw_json, client, settings, opts, &rt, &mut out,
        );
    }
    let stream = format == Format::Jsonl;
    let result = if !action.is_generic() {
        if args.all {
            return Err(Error::usage(format!(
                "--all applies to Web API list methods, not {}",
                action.name
            )));
        }
        let mut emit = |item: &serde_json::Value| {
            out.write_str(&serde_json::to_string(item).unwrap_or_default());
            out.write_str("\n");
            !out.is_broken()
        };
        let sink: crate::actions::Sink = if stream { Some(&mut emit) } else { None };
        rt.block_on(crate::actions::run(
            &client, action, values, &settings, opts, sink,
        ))
        .map(|v| {
            if stream && v.as_array().is_some_and(|a| a.is_empty()) {
                serde_json::Value::Null
            } else {
                v
            }
        })
    } else if args.all && stream {
        stream_pages(
            &rt,
            &client,
            action,
            values,
            &settings,
            opts,
            args.cursor_file.as_deref(),
            &mut out,
        )
    } else if args.link_mentions {
        rt.block_on(async {
            let mut dir = crate::actions::directory::Directory::new(&client, &settings, &values);
            crate::actions::mentions::link_params(&mut dir, &mut values).await?;
            call_method(&client, action, values, &settings, opts, None).await
        })
    } else {
        rt.block_on(call_method(&client, action, values, &settings, opts, None))
    };
    match result {
        Ok(v) => {
            match format {
                Format::St2 => out.write_str(&st2_frame(&v, None)),
                _ if v.is_null() => {}
                f => out.value(&v, f),
            }
            Ok(crate::exit::SUCCESS)
        }
        Err(e) => {
            if format == Format::St2 {
                let result = e
                    .output
                    .as_deref()
                    .or(e.response.as_deref())
                    .cloned()
                    .unwrap_or_else(
                        || serde_json::json!({"error": crate::redact::scrub(&e.message)}),
                    );
                out.write_str(&st2_frame(&result, Some(false)));
            } else if let Some(partial) = e.output.as_deref() {
                out.value(partial, format);
            }
            Err(e)
        }
    }
}

/// `--all -o jsonl`: streams list items as pages arrive, so memory stays flat however large
/// the workspace; with `--cursor-file`, progress is saved after each page is out (and the file
/// removed once the list is complete).
#[allow(clippy::too_many_arguments)]
fn stream_pages(
    rt: &tokio::runtime::Runtime,
    client: &crate::transport::Client,
    action: &'static Action,
    mut values: serde_json::Map<String, serde_json::Value>,
    settings: &crate::config::Settings,
    opts: RunOptions,
    cursor_file: Option<&std::path::Path>,
    out: &mut Out,
) -> Result<serde_json::Value> {
    if let Some(path) = cursor_file
        && let Ok(c) = std::fs::read_to_string(path)
        && !c.trim().is_empty()
    {
        crate::log::warn(&format!(
            "resuming from the cursor saved in {}",
            path.display()
        ));
        values.insert(
            "cursor".into(),
            serde_json::Value::String(c.trim().to_string()),
        );
    }
    let mut emit = |page: &serde_json::Value, keys: &[String]| {
        out.write_str(&jsonl_items(page, keys));
        out.flush();
        if out.is_broken() {
            // The reader went away: some of this page may not have reached it, so the
            // saved cursor stays at this page (a resumed run repeats it, skips nothing).
            return false;
        }
        // Every line of this page is out and flushed: the next page is where to resume.
        if let (Some(path), Some(next)) =
            (cursor_file, crate::transport::paginate::next_cursor(page))
        {
            save_cursor(path, &next);
        }
        true
    };
    let r = rt.block_on(call_method(
        client,
        action,
        values,
        settings,
        opts,
        Some(&mut emit),
    ));
    if let Some(path) = cursor_file
        && r.is_ok()
        && !out.is_broken()
    {
        let _ = std::fs::remove_file(path);
    }
    r.map(|_| serde_json::Value::Null)
}

/// The items of a page's (first) list field, one JSON document per line.
fn jsonl_items(page: &serde_json::Value, keys: &[String]) -> String {
    let mut buf = String::new();
    for k in keys.iter().take(1) {
        for item in page[k.as_str()].as_array().into_iter().flatten() {
            buf.push_str(&serde_json::to_string(item).unwrap_or_default());
            buf.push('\n');
        }
    }
    buf
}

/// Replaces the cursor file atomically (`0600`, never through a link), so a crash leaves the
/// old cursor or the new one, never half of one.
fn save_cursor(path: &std::path::Path, cursor: &str) {
    if let Err(e) = crate::store::replace_file(path, cursor.as_bytes(), true) {
        crate::log::warn(&format!(
            "cannot save the cursor to {}: {e}",
            path.display()
        ));
    }
}

/// `--each`: one call per record, one result line per record, a summary on stderr.
#[allow(clippy::too_many_arguments)]
fn bulk(
    args: &RunArgs,
    each: String,
    action: &'static Action,
    pairs: Vec<(String, String)>,
    json: serde_json::Map<String, serde_json::Value>,
    client: crate::transport::Client,
    settings: crate::config::Settings,
    opts: RunOptions,
    rt: &tokio::runtime::Runtime,
    out: &mut Out,
) -> Result<u8> {
    if args.all {
        return Err(Error::usage("--all and --each do not go together"));
    }
    let bulk_opts = crate::bulk::BulkOptions {
        format: args
            .input_format
            .unwrap_or_else(|| crate::bulk::records::InputFormat::guess(&each)),
        each,
        concurrency: args.concurrency,
        id_field: args.id_field.clone(),
        state: args.state.clone(),
        mode: args.mode,
        allow_unknown: args.allow_unknown_params,
        run: opts,
    };
    crate::bulk::check(action, &bulk_opts)?;
    let started = std::time::Instant::now();
    let emit = |line: &serde_json::Value| {
        out.write_str(&serde_json::to_string(line).unwrap_or_default());
        out.write_str("\n");
        out.flush();
        !out.is_broken()
    };
    let s = rt.block_on(crate::bulk::run(
        client, action, pairs, json, settings, bulk_opts, emit,
    ))?;
    crate::log::info(&format!(
        "{} sent, {} updated, {} deleted, {} skipped, {} failed in {:.1}s",
        s.sent,
        s.updated,
        s.deleted,
        s.skipped,
        s.failed,
        started.elapsed().as_secs_f64()
    ));
    if s.failed > 0 {
        return Err(Error::failed(format!(
            "{} record(s) failed; see their result lines",
            s.failed
        )));
    }
    Ok(crate::exit::SUCCESS)
}

/// `st2 run <ref> -h`: description, then required and optional parameters (immutable hidden).
pub fn action_help(a: &Action) -> String {
    let mut s = String::new();
    s.push_str(a.description);
    s.push('\n');
    if a.status != Status::Current {
        s.push_str(&format!("\nStatus: {}", a.status.as_str()));
        if let Some(r) = a.replacement {
            s.push_str(&format!(" (use {r})"));
        }
        s.push('\n');
    }
    // Required means "must be given": a parameter with a default (http_method) is optional
    // to the caller even where st2's metadata marks it required.
    let must_give = |p: &crate::catalog::Param| p.required && p.default.is_none();
    for (title, required) in [
        ("Required Parameters:", true),
        ("Optional Parameters:", false),
    ] {
        let ps: Vec<_> = a
            .params
            .iter()
            .filter(|p| !p.immutable && must_give(p) == required)
            .collect();
        if ps.is_empty() {
            continue;
        }
        s.push('\n');
        s.push_str(title);
        s.push('\n');
        for p in ps {
            s.push_str(&format!("    {}\n", p.name));
            if !p.description.is_empty() {
                s.push_str(&wrap(p.description, 8, 78));
            }
            s.push_str(&format!("        Type: {}\n", p.ty.as_str()));
            if !p.enum_values.is_empty() {
                s.push_str(&format!("        Enum: {}\n", p.enum_values.join(", ")));
            }
            if let Some(d) = p.default {
                let shown = serde_json::from_str::<String>(d).unwrap_or_else(|_| d.to_string());
                s.push_str(&format!("        Default: {shown}\n"));
            }
        }
    }
    if !a.arg_groups.is_empty() {
        s.push_str("\nArgument groups:\n");
        for g in a.arg_groups {
            let kind = match g.kind {
                GroupKind::OneOf => "one of",
                GroupKind::ExactlyOne => "exactly one of",
                GroupKind::AtMostOne => "at most one of",
            };
            s.push_str(&format!("    {kind}: {}\n", g.args.join(", ")));
        }
    }
    if let Some(url) = a.docs_url() {
        s.push_str(&format!("\nSlack reference: {url}\n"));
    }
    s
}

fn wrap(text: &str, indent: usize, width: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > width {
            out.push_str(&pad);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&pad);
        out.push_str(&line);
        out.push('\n');
    }
    out
}
