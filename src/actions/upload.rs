//! `files.upload` on Slack's external upload flow (the one-step `files.upload` method is shut
//! down):
//!
//! 1. `files.getUploadURLExternal` with the file name and its exact byte count;
//! 2. a POST of the bytes to the returned upload URL, with no token (the URL is
//!    pre-authorised, so it is treated as a secret); files stream from disk;
//! 3. `files.completeUploadExternal` with the file id and title, sharing to `channels`.
//!
//! Returns Slack's final answer: the `files` array of file objects. Everything about the input
//! (exactly one source, a readable file, one channel with `thread_ts`) is checked before the
//! first request, so bad input exits 2 with nothing sent.

use super::{args_with_token, call, once, str_param};
use crate::catalog::Action;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::run::{RunOptions, choose_token};
use crate::transport::Client;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Where the bytes come from.
enum Source {
    /// `content=…` or standard input, held in memory.
    Memory { bytes: Bytes, name: &'static str },
    /// A file on disk, streamed (and re-opened for a retry).
    File { path: PathBuf, len: u64 },
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Memory { bytes, .. } => bytes.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    fn default_name(&self) -> String {
        match self {
            Source::Memory { name, .. } => (*name).to_string(),
            Source::File { path, .. } => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "upload".into()),
        }
    }

    async fn body(&self) -> Result<reqwest::Body> {
        match self {
            Source::Memory { bytes, .. } => Ok(reqwest::Body::from(bytes.clone())),
            Source::File { path, .. } => {
                let f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))?;
                Ok(reqwest::Body::from(f))
            }
        }
    }
}

/// Picks the one source among `file_path`, `file` and `content` and checks it is readable.
async fn source(params: &Map<String, Value>) -> Result<Source> {
    let given: Vec<&str> = ["file_path", "file", "content"]
        .into_iter()
        .filter(|k| params.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    if given.len() != 1 {
        return Err(Error::usage(format!(
            "files.upload needs exactly one of file_path, file or content (got {})",
            if given.is_empty() {
                "none".to_string()
            } else {
                given.join(", ")
            }
        ))
        .hint(
            "file_path=PATH uploads a file (`-` reads standard input); content=TEXT uploads text",
        ));
    }
    let empty = |what: &str| {
        Error::usage(format!("nothing to upload: {what} is empty"))
            .hint("Slack does not accept empty files")
    };
    if given[0] == "content" {
        let text = params
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if text.is_empty() {
            return Err(empty("content"));
        }
        return Ok(Source::Memory {
            bytes: Bytes::from(text.as_bytes().to_vec()),
            name: "snippet.txt",
        });
    }
    let path = str_param(params, given[0]).unwrap_or_default();
    if path.is_empty() {
        return Err(Error::usage(format!("{} is empty", given[0])));
    }
    if path == "-" {
        let mut buf = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::usage(format!("cannot read standard input: {e}")))?;
        if buf.is_empty() {
            return Err(empty("standard input"));
        }
        return Ok(Source::Memory {
            bytes: Bytes::from(buf),
            name: "stdin.txt",
        });
    }
    let path = PathBuf::from(path);
    let unreadable = |e: std::io::Error| {
        Error::usage(format!("cannot read {}: {e}", path.display()))
            .hint("nothing was sent; check the path and its permissions")
    };
    let meta = tokio::fs::metadata(&path).await.map_err(unreadable)?;
    if !meta.is_file() {
        return Err(Error::usage(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    // Opening proves it is readable now, before Slack is told about it.
    tokio::fs::File::open(&path).await.map_err(unreadable)?;
    if meta.len() == 0 {
        return Err(empty(&path.display().to_string()));
    }
    Ok(Source::File {
        len: meta.len(),
        path,
    })
}

/// The `channels` parameter as trimmed IDs.
fn channels(params: &Map<String, Value>) -> Vec<String> {
    params
        .get("channels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| match v {
            Value::String(s) => s.trim().to_string(),
            other => other.to_string(),
        })
        .filter(|s| !s.is_empty())
        .collect()
}

pub async fn upload(
    client: &Client,
    action: &Action,
    params: &Map<String, Value>,
    settings: &Settings,
    opts: RunOptions,
) -> Result<Value> {
    choose_token(action, params, settings)?;
    let channels = channels(params);
    let thread_ts = str_param(params, "thread_ts");
    if thread_ts.is_some() && channels.len() != 1 {
        return Err(Error::usage(
            "thread_ts needs exactly one channel in channels (the thread's conversation)",
        ));
    }
    let src = source(params).await?;
    let filename = str_param(params, "filename")
        .map(str::to_string)
        .unwrap_or_else(|| src.default_name());
    let title = str_param(params, "title").unwrap_or(&filename).to_string();

    // 1. Announce the file and get its upload URL.
    let mut step1 = json!({"filename": filename, "length": src.len()});
    if let Some(t) = str_param(params, "filetype") {
        step1["snippet_type"] = json!(t);
    }
    let got = call(
        client,
        settings,
        "files.getUploadURLExternal",
        args_with_token(params, step1),
        once(opts),
        None,
    )
    .await?;
    let (Some(url), Some(file_id)) = (
        got.get("upload_url").and_then(Value::as_str),
        got.get("file_id").and_then(Value::as_str),
    ) else {
        return Err(Error::failed(
            "files.getUploadURLExternal answered without upload_url or file_id",
        ));
    };
    let url = Secret::new(url);

    // 2. Send the bytes (no token: the URL itself authorises the upload).
    send(client, &url, &src, &filename).await?;

    // 3. Complete the upload and share it.
    let mut step3 = json!({"files": [{"id": file_id, "title": title}]});
    if !channels.is_empty() {
        step3["channels"] = json!(channels);
    }
    if let Some(c) = str_param(params, "initial_comment") {
        step3["initial_comment"] = json!(c);
    }
    if let Some(ts) = thread_ts {
        step3["thread_ts"] = json!(ts);
    }
    call(
        client,
        settings,
        "files.completeUploadExternal",
        args_with_token(params, step3),
        once(opts),
        None,
    )
    .await
}

/// POSTs the bytes to the upload URL. The source can be read again, and the URL names one
/// pending file, so 429, 5xx, time-outs and connection failures are retried.
async fn send(client: &Client, url: &Secret, src: &Source, filename: &str) -> Result<()> {
    let o = client.options();
    // The client's timeout is per request; give big files time to travel (≥ 256 KiB/s).
    let timeout = o.timeout + Duration::from_secs(src.len() / (256 * 1024));
    let mut attempt = 0u32;
    loop {
        if o.verbose {
            crate::log::debug(&format!(
                "-> upload URL ({} bytes of {filename}, no token)",
                src.len()
            ));
        }
        let sent = client
            .http_for(url.expose())?
            .post(url.expose())
            .header("content-type", "application/octet-stream")
            .header("content-length", src.len())
            .timeout(timeout)
            .body(src.body().await?)
            .send()
            .await;
        let why = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok());
                let text: String = resp
                    .text()
                    .await
                    .unwrap_or_default()
                    .trim()
                    .chars()
                    .take(200)
                    .collect();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                if !(status == 429 || status >= 500) || attempt >= o.retries {
                    return Err(Error::failed(format!(
                        "upload of {filename} failed: HTTP {status} {text}"
                    ))
                    .hint("the upload URL is valid for a short time only; run the action again"));
                }
                let wait = crate::limits::retry_after(
                    retry_after.unwrap_or(1.0),
                    Duration::from_secs(120),
                );
                (format!("HTTP {status}"), wait)
            }
            Err(e) => {
                let e = e.without_url();
                if attempt >= o.retries {
                    return Err(Error::failed(format!(
                        "upload of {filename} failed: {}",
                        crate::redact::scrub(&e.to_string())
                    )));
                }
                (
                    crate::redact::scrub(&e.to_string()),
                    Duration::from_millis(500 << attempt.min(6)),
                )
            }
        };
        attempt += 1;
        crate::log::warn(&format!(
            "upload of {filename}: {}; retrying in {:.1}s (retry {attempt} of {})",
            why.0,
            why.1.as_secs_f64(),
            o.retries
        ));
        tokio::time::sleep(why.1).await;
    }
}
