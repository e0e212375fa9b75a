//! `slackctl run <action> key=value …`: parse, validate (exit 2 before anything is sent),
//! call, print.

use super::action::find_or_suggest;
use crate::catalog::{Action, Status};
use crate::config::{Env, Flags};
use crate::error::{Error, Result};
use crate::output::{Format, Out, st2_frame};
use crate::params::{self, ValidateOpts};
use crate::run::{RunOptions, call_method};
use std::io::Read;

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Action: `chat.postMessage` or `slack.chat.postMessage`
    pub action: Option<String>,
    /// Parameters as key=value (st2 syntax); @key=path reads a file
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
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
        use clap::CommandFactory;
        let mut cmd = super::Cli::command();
        let sub = cmd.find_subcommand_mut("run").expect("run subcommand");
        let help = sub.render_long_help().to_string();
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

    let mut raw = params::parse_cli(&args.params)?;
    if let Some(p) = &args.parameters {
        let text = if p == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::usage(format!("cannot read parameters from stdin: {e}")))?;
            s
        } else {
            p.clone()
        };
        raw.json = params::parse_json_params(&text, action)?;
    }
    let mut values = params::validate(
        action,
        raw,
        ValidateOpts {
            allow_unknown: args.allow_unknown_params,
        },
    )?;
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
        // Stream list items as pages arrive: memory stays flat however large the workspace.
        let mut emit = |page: &serde_json::Value, keys: &[String]| {
            let mut buf = String::new();
            for k in keys.iter().take(1) {
                for item in page[k.as_str()].as_array().into_iter().flatten() {
                    buf.push_str(&serde_json::to_string(item).unwrap_or_default());
                    buf.push('\n');
                }
            }
            out.write_str(&buf);
            out.flush();
            !out.is_broken()
        };
        rt.block_on(call_method(
            &client,
            action,
            values,
            &settings,
            opts,
            Some(&mut emit),
        ))
        .map(|_| serde_json::Value::Null)
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
                    .unwrap_or_else(|| serde_json::json!({"error": e.message}));
                out.write_str(&st2_frame(&result, Some(false)));
            } else if let Some(partial) = e.output.as_deref() {
                out.value(partial, format);
            }
            Err(e)
        }
    }
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
    for (title, required) in [
        ("Required Parameters:", true),
        ("Optional Parameters:", false),
    ] {
        let ps: Vec<_> = a
            .params
            .iter()
            .filter(|p| !p.immutable && p.required == required)
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
