//! Rendering results: JSON (pretty on a terminal, compact when piped), YAML, JSON Lines, and
//! st2's python-runner framing. All stdout writes go through [`Out`], which turns a closed
//! pipe into a quiet stop instead of a panic.

use serde_json::Value;
use std::io::{IsTerminal, Write};

/// st2's python-runner result delimiter (`st2common/constants/action.py`).
pub const ST2_DELIMITER: &str = "%%%%%~=~=~=************=~=~=~%%%%";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Slack's JSON: pretty on a terminal, one line when piped.
    Json,
    Yaml,
    /// `{"result": …, "status": …}` between st2's delimiter lines, as st2's python wrapper prints.
    St2,
    /// One JSON value per line (with `--all`, one list item per line as pages arrive).
    Jsonl,
}

/// Buffered stdout that remembers a broken pipe.
pub struct Out {
    w: std::io::BufWriter<std::io::Stdout>,
    pub tty: bool,
    broken: bool,
}

impl Default for Out {
    fn default() -> Self {
        Self::new()
    }
}

impl Out {
    pub fn new() -> Self {
        let stdout = std::io::stdout();
        let tty = stdout.is_terminal();
        Out {
            w: std::io::BufWriter::with_capacity(64 * 1024, stdout),
            tty,
            broken: false,
        }
    }

    /// Writes text; after a broken pipe, further writes are dropped.
    pub fn write_str(&mut self, s: &str) {
        if self.broken {
            return;
        }
        if self.w.write_all(s.as_bytes()).is_err() {
            self.broken = true;
        }
    }

    pub fn flush(&mut self) {
        if !self.broken && self.w.flush().is_err() {
            self.broken = true;
        }
    }

    /// True once stdout is closed (the reader went away).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Prints one value in `format` (st2 framing excepted: see [`Out::st2`]).
    pub fn value(&mut self, v: &Value, format: Format) {
        let text = match format {
            Format::Json if self.tty => serde_json::to_string_pretty(v).unwrap_or_default(),
            Format::Json | Format::Jsonl => serde_json::to_string(v).unwrap_or_default(),
            Format::Yaml => to_yaml(v),
            Format::St2 => st2_frame(v, None),
        };
        self.write_str(&text);
        if !text.ends_with('\n') {
            self.write_str("\n");
        }
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        self.flush();
    }
}

/// st2's framing: delimiter, `json.dumps({"result": …, "status": …})`, newline, delimiter.
pub fn st2_frame(result: &Value, status: Option<bool>) -> String {
    let body = serde_json::json!({"result": result, "status": status});
    format!("{ST2_DELIMITER}{}\n{ST2_DELIMITER}", python_json(&body))
}

/// JSON as Python's `json.dumps` writes it by default: `", "` and `": "` separators, non-ASCII
/// escaped as `\uXXXX`.
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_py(v, &mut out);
    out
}

fn write_py(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str(k, out);
                out.push_str(": ");
                write_py(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(v, out);
            }
            out.push(']');
        }
        Value::String(s) => py_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn py_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A small block-style YAML writer for JSON values (strings quoted when YAML could misread
/// them, so the output round-trips).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_node(v, 0, &mut out, false);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => yaml_string(s),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// A YAML string: plain when safe, else JSON-quoted (valid YAML double-quoted style).
pub fn yaml_string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '/' || c == '_')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !s.ends_with(' ')
        && !s.contains([
            '\n', '\t', '"', '\'', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', '%', '@', '`',
        ])
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "~"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn yaml_node(v: &Value, indent: usize, out: &mut String, _in_list: bool) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                out.push_str(&pad);
                out.push_str(&yaml_string(k));
                out.push(':');
                match val {
                    Value::Object(c) if !c.is_empty() => {
                        out.push('\n');
                        yaml_node(val, indent + 2, out, false);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        yaml_node(val, indent, out, false);
                    }
                    _ => {
                        out.push(' ');
                        out.push_str(&flow(val));
                        out.push('\n');
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&pad);
                out.push_str("- ");
                match item {
                    Value::Object(c) if !c.is_empty() => {
                        let mut inner = String::new();
                        yaml_node(item, indent + 2, &mut inner, true);
                        out.push_str(inner.trim_start());
                    }
                    Value::Array(c) if !c.is_empty() => {
                        out.push('\n');
                        yaml_node(item, indent + 2, out, true);
                    }
                    _ => {
                        out.push_str(&flow(item));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&flow(other));
            out.push('\n');
        }
    }
}

fn flow(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        other => yaml_scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn st2_framing_matches_pythons_json_dumps() {
        let s = st2_frame(&json!({"ok": true, "text": "héllo", "list": [1, 2]}), None);
        assert_eq!(
            s,
            format!(
                "{ST2_DELIMITER}{{\"result\": {{\"ok\": true, \"text\": \"h\\u00e9llo\", \"list\": [1, 2]}}, \"status\": null}}\n{ST2_DELIMITER}"
            )
        );
    }

    #[test]
    fn yaml_round_trips_tricky_strings() {
        let v = json!({"a": "yes", "b": "1.50", "c": {"d": [1, {"e": "x: y"}], "f": []}, "g": "plain text"});
        let y = to_yaml(&v);
        let back: serde_json::Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(back["a"], "yes");
        assert_eq!(back["b"], "1.50");
        assert_eq!(back["c"]["d"][1]["e"], "x: y");
        assert_eq!(back["g"], "plain text");
    }
}

/// How wide a table may be when stdout is a terminal: `COLUMNS` when set (shells and tests
/// set it), else the terminal's own width, else 80.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&c: &usize| c >= 20)
        .or_else(|| terminal_size::terminal_size().map(|(w, _)| w.0 as usize))
        .unwrap_or(80)
}

/// How a table too wide for its width gives way: the widest column first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Cut cells short with `…` (one line per row: lists stay scannable).
    Truncate,
    /// Wrap cells at word boundaries (every word stays visible).
    Wrap,
}

/// A bordered table for terminals, no wider than `width`.
pub fn table(header: &[&str], rows: &[Vec<String>], width: usize, fit: Fit) -> String {
    use tabled::settings::{Style, Width, peaker::PriorityMax};
    let mut b = tabled::builder::Builder::default();
    b.push_record(header.iter().map(|s| s.to_string()));
    for r in rows {
        b.push_record(r.iter().cloned());
    }
    let mut t = b.build();
    t.with(Style::ascii());
    match fit {
        Fit::Truncate => t.with(
            Width::truncate(width)
                .suffix("…")
                .priority(PriorityMax::new(false)),
        ),
        Fit::Wrap => t.with(
            Width::wrap(width)
                .keep_words(true)
                .priority(PriorityMax::new(false)),
        ),
    };
    let mut s = t.to_string();
    s.push('\n');
    s
}

/// One TSV cell: tabs and line breaks become spaces, so every record stays one line.
pub fn tsv_cell(s: &str) -> String {
    if s.contains(['\t', '\n', '\r']) {
        s.replace(['\t', '\n', '\r'], " ")
    } else {
        s.to_string()
    }
}
