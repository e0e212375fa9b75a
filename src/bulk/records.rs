//! Input records for bulk sends: JSON Lines or CSV, read lazily one at a time so memory does
//! not grow with the file.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::io::BufRead;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Jsonl,
    Csv,
}

impl InputFormat {
    /// `.csv` files are CSV; everything else (and stdin) is JSON Lines.
    pub fn guess(path: &str) -> InputFormat {
        if path.to_ascii_lowercase().ends_with(".csv") {
            InputFormat::Csv
        } else {
            InputFormat::Jsonl
        }
    }
}

/// One record and where it came from (1-based line, or CSV row number).
pub struct Record {
    pub line: u64,
    pub fields: Map<String, Value>,
}

/// Opens `path` (`-` = stdin) and yields records.
pub fn open(
    path: &str,
    format: InputFormat,
) -> Result<Box<dyn Iterator<Item = Result<Record>> + Send>> {
    let reader: Box<dyn BufRead + Send> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f =
            std::fs::File::open(path).map_err(|e| Error::usage(format!("--each {path}: {e}")))?;
        Box::new(std::io::BufReader::new(f))
    };
    Ok(match format {
        InputFormat::Jsonl => Box::new(jsonl(reader)),
        InputFormat::Csv => Box::new(csv_records(reader)),
    })
}

fn jsonl(reader: Box<dyn BufRead + Send>) -> impl Iterator<Item = Result<Record>> {
    reader.lines().enumerate().filter_map(|(i, line)| {
        let n = i as u64 + 1;
        match line {
            Err(e) => Some(Err(Error::usage(format!(
                "record {n}: cannot read input: {e}"
            )))),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(match serde_json::from_str::<Value>(&l) {
                Ok(Value::Object(fields)) => Ok(Record { line: n, fields }),
                Ok(_) => Err(Error::usage(format!(
                    "record {n}: each line must be a JSON object"
                ))),
                Err(e) => Err(Error::usage(format!("record {n}: invalid JSON: {e}"))),
            }),
        }
    })
}

fn csv_records(reader: Box<dyn BufRead + Send>) -> impl Iterator<Item = Result<Record>> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map(|h| h.iter().map(str::to_string).collect::<Vec<_>>());
    let mut rows = rdr.into_records();
    let mut header_err = None;
    let headers = match headers {
        Ok(h) => h,
        Err(e) => {
            header_err = Some(Error::usage(format!("CSV header: {e}")));
            Vec::new()
        }
    };
    let mut n = 1u64;
    std::iter::from_fn(move || {
        if let Some(e) = header_err.take() {
            return Some(Err(e));
        }
        let row = rows.next()?;
        n += 1;
        Some(match row {
            Err(e) => Err(Error::usage(format!("record {n}: {e}"))),
            Ok(r) => Ok(Record {
                line: n,
                fields: headers
                    .iter()
                    .zip(r.iter())
                    .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                    .collect(),
            }),
        })
    })
}
