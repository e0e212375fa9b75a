//! Input records for bulk sends: JSON Lines or CSV, read lazily one at a time so memory does
//! not grow with the file.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// Opens `path` (`-` = stdin; FIFOs and pipes are fine, they are read as a stream) and yields
/// records. A record longer than [`crate::limits::max_file`] bytes ends the input with an
/// error: the input may never end (`/dev/zero`), so nothing past it is read.
pub fn open(
    path: &str,
    format: InputFormat,
) -> Result<Box<dyn Iterator<Item = Result<Record>> + Send>> {
    let reader: Box<dyn BufRead + Send> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f =
            std::fs::File::open(path).map_err(|e| Error::usage(format!("--each {path}: {e}")))?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::usage(format!("--each {path}: is a directory")));
        }
        Box::new(std::io::BufReader::new(f))
    };
    Ok(from_reader(reader, format, crate::limits::max_file()))
}

/// Records from any reader, none longer than `max` bytes.
fn from_reader(
    reader: Box<dyn BufRead + Send>,
    format: InputFormat,
    max: u64,
) -> Box<dyn Iterator<Item = Result<Record>> + Send> {
    match format {
        InputFormat::Jsonl => Box::new(Jsonl {
            reader,
            max,
            n: 0,
            done: false,
        }),
        InputFormat::Csv => Box::new(csv_records(reader, max)),
    }
}

/// The error for a record over the size limit; the rest of the input is left unread.
fn too_long(n: u64, max: u64) -> Error {
    Error::usage(format!(
        "record {n}: longer than {max} bytes; the rest of the input was not read (raise the limit with {}=<bytes>)",
        crate::config::env::SLACKCTL_MAX_FILE_SIZE
    ))
}

/// JSON Lines, one bounded line at a time.
struct Jsonl {
    reader: Box<dyn BufRead + Send>,
    max: u64,
    n: u64,
    done: bool,
}

impl Iterator for Jsonl {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        while !self.done {
            let mut buf = Vec::new();
            let read = (&mut self.reader)
                .take(self.max.saturating_add(1))
                .read_until(b'\n', &mut buf);
            self.n += 1;
            let n = self.n;
            match read {
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::usage(format!(
                        "record {n}: cannot read input: {e}"
                    ))));
                }
                Ok(0) => return None,
                Ok(_) => {}
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            } else if buf.len() as u64 > self.max {
                self.done = true;
                return Some(Err(too_long(n, self.max)));
            }
            let Ok(line) = std::str::from_utf8(&buf) else {
                return Some(Err(Error::usage(format!("record {n}: not UTF-8 text"))));
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(fields)) => Ok(Record { line: n, fields }),
                Ok(_) => Err(Error::usage(format!(
                    "record {n}: each line must be a JSON object"
                ))),
                Err(e) => Err(Error::usage(format!("record {n}: invalid JSON: {e}"))),
            });
        }
        None
    }
}

/// Refuses to read more than `max` bytes past the start of the record being parsed, so one
/// CSV record (which may span lines) cannot grow without bound. `start` is the byte offset
/// where that record begins, moved on as each record is handed out.
struct Bounded<R> {
    inner: R,
    total: u64,
    start: Arc<AtomicU64>,
    over: Arc<AtomicBool>,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let used = self
            .total
            .saturating_sub(self.start.load(Ordering::Relaxed));
        if used > self.max {
            self.over.store(true, Ordering::Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "record over the size limit",
            ));
        }
        // Never read further than one byte past the limit.
        let room = usize::try_from(self.max + 1 - used).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.total += n as u64;
        Ok(n)
    }
}

fn csv_records(reader: Box<dyn BufRead + Send>, max: u64) -> impl Iterator<Item = Result<Record>> {
    let start = Arc::new(AtomicU64::new(0));
    let over = Arc::new(AtomicBool::new(false));
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(Bounded {
            inner: reader,
            total: 0,
            start: start.clone(),
            over: over.clone(),
            max,
        });
    let headers = rdr
        .headers()
        .map(|h| h.iter().map(str::to_string).collect::<Vec<_>>());
    let mut header_err = None;
    let headers = match headers {
        Ok(h) => h,
        Err(_) if over.load(Ordering::Relaxed) => {
            header_err = Some(too_long(1, max));
            Vec::new()
        }
        Err(e) => {
            header_err = Some(Error::usage(format!("CSV header: {e}")));
            Vec::new()
        }
    };
    start.store(rdr.position().byte(), Ordering::Relaxed);
    let mut rows = rdr.into_records();
    let mut n = 1u64;
    let mut done = false;
    std::iter::from_fn(move || {
        if let Some(e) = header_err.take() {
            done = true;
            return Some(Err(e));
        }
        if done {
            return None;
        }
        let row = rows.next()?;
        n += 1;
        start.store(rows.reader().position().byte(), Ordering::Relaxed);
        Some(match row {
            Err(e) if e.is_io_error() => {
                // A read error repeats forever; stop at the first.
                done = true;
                if over.load(Ordering::Relaxed) {
                    Err(too_long(n, max))
                } else {
                    Err(Error::usage(format!("record {n}: cannot read input: {e}")))
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8], format: InputFormat, max: u64) -> Vec<std::result::Result<u64, String>> {
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(text.to_vec()));
        from_reader(reader, format, max)
            .map(|r| r.map(|r| r.line).map_err(|e| e.message))
            .collect()
    }

    #[test]
    fn jsonl_lines_are_bounded_and_the_rest_is_left_unread() {
        let long = format!("{{\"t\": \"{}\"}}", "x".repeat(40));
        let text = format!("{{\"a\": 1}}\n\n{long}\n{{\"b\": 2}}\n");
        let got = read(text.as_bytes(), InputFormat::Jsonl, 30);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Ok(1));
        let e = got[1].as_ref().unwrap_err();
        assert!(
            e.starts_with("record 3: longer than 30 bytes") && e.contains("not read"),
            "{e}"
        );
        // A line of exactly the limit is fine, with or without its line end.
        let exact = format!("{{\"t\": \"{}\"}}", "x".repeat(21));
        assert_eq!(exact.len(), 30);
        assert_eq!(read(exact.as_bytes(), InputFormat::Jsonl, 30), vec![Ok(1)]);
        let both = format!("{exact}\n{exact}");
        assert_eq!(
            read(both.as_bytes(), InputFormat::Jsonl, 30),
            vec![Ok(1), Ok(2)]
        );
        // Bad lines fail alone; the reading goes on.
        let got = read(b"[1]\n\xff\n{\"a\": 1}\n", InputFormat::Jsonl, 30);
        assert!(got[0].as_ref().unwrap_err().contains("JSON object"));
        assert!(got[1].as_ref().unwrap_err().contains("UTF-8"));
        assert_eq!(got[2], Ok(3));
    }

    #[test]
    fn a_csv_record_is_bounded_even_across_lines() {
        let ok = read(b"a,b\n1,2\n3,4\n", InputFormat::Csv, 10);
        assert_eq!(ok, vec![Ok(2), Ok(3)]);
        let quoted = format!("a,b\n1,2\n\"{}\",x\n5,6\n", "line\n".repeat(50));
        let got = read(quoted.as_bytes(), InputFormat::Csv, 64);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Ok(2));
        assert!(
            got[1]
                .as_ref()
                .unwrap_err()
                .starts_with("record 3: longer than 64 bytes"),
            "{got:?}"
        );
        // Many small records through a small limit: the count is per record.
        let many: String = std::iter::once("a,b\n".to_string())
            .chain((0..2000).map(|i| format!("{i},{i}\n")))
            .collect();
        let got = read(many.as_bytes(), InputFormat::Csv, 16);
        assert_eq!(got.len(), 2000);
        assert!(got.iter().all(Result::is_ok));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Whatever the bytes, reading ends, never panics, and stops at the first line over
        /// the limit with an error naming it.
        #[test]
        fn any_input_ends_and_stops_at_the_first_long_line(
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'"'),
                    proptest::strategy::Just(b','),
                    proptest::strategy::Just(b'{'),
                    proptest::strategy::Just(b'}'),
                    proptest::num::u8::ANY,
                ],
                0..400,
            ),
            max in 1u64..64,
        ) {
            let got = read(&text, InputFormat::Jsonl, max);
            let first_long = text
                .split(|b| *b == b'\n')
                .position(|l| l.len() as u64 > max)
                .map(|i| i as u64 + 1);
            if let Some(n) = first_long {
                let last = got.last().expect("an error for the long line");
                let want = format!("record {n}: longer than {max} bytes");
                proptest::prop_assert!(
                    last.as_ref().is_err_and(|e| e.starts_with(&want)),
                    "{:?}",
                    last
                );
            }
            for r in got.iter().flatten() {
                proptest::prop_assert!(first_long.is_none_or(|n| *r < n));
            }
            let rows = read(&text, InputFormat::Csv, max);
            proptest::prop_assert!(rows.len() <= text.len() + 1);
        }
    }
}
