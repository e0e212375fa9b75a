//! The shared backend for several hosts: the same traits as the local files, kept in one
//! Redis (`state_backend: redis://host:6379/0`, `rediss://` for TLS), which a StackStorm
//! cluster already runs for its own coordination.
//!
//! Every promise is kept with single atomic server-side steps, so no lock is ever held across
//! the network:
//! * pacing: one Lua script per token take, running the arithmetic of
//!   [`super::pace::take_from`] on the server's clock (hosts' clocks may disagree; the
//!   server's is the one clock every process reads), and one per `Retry-After` block;
//! * the send-once journal: one Lua script per claim (claim if absent, else say who holds it
//!   and whether that holder is still alive), and one `MULTI` per mark;
//! * the sensor's dedupe record: set-if-absent with a TTL per message.
//!
//! Keys (all under `slackctl:`; the part in braces is also the Redis Cluster hash tag):
//! `pace:<key>` (hash `tat`, `blk`; expires a minute after the bucket is full again and
//! unblocked), `cache:<key>` (string; the fact's own TTL), `journal:{<name>}:sent` (hash
//! id → entry JSON; no TTL), `journal:{<name>}:claims` (hash id → holder; no TTL, emptied by
//! marks and releases), `journal:{<name>}:holders` (hash holder → lease expiry in ms of the
//! server's clock; refreshed every second, a lapsed lease is a dead holder).
//!
//! The client is redis-rs on tokio, on a runtime of its own (one thread) so the synchronous
//! store traits can wait for an answer from any thread, including from inside the caller's
//! own runtime, without ever starving the connection. One multiplexed connection per
//! process is shared by every store and re-opened on the next call after any failure, so
//! recovery is automatic when Redis returns.

use crate::error::{Error, Result};
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for one answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failed connection, calls fail at once for this long instead of each waiting for
/// their own attempt (a bulk run would otherwise stall once per record).
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(250);

/// Whether `s` names a Redis backend.
pub fn is_url(s: &str) -> bool {
    s.starts_with("redis://") || s.starts_with("rediss://")
}

/// The URL for messages: the password (and user name) replaced, so it can be printed.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    match auth {
        Some(_) => format!("{scheme}://[redacted]@{host}"),
        None => format!("{scheme}://{host}"),
    }
}

/// Registers the credentials of `url` with the scrubber, so they never reach any output.
pub fn register_secrets(url: &str) {
    let Some((_, rest)) = url.split_once("://") else {
        return;
    };
    if let Some((auth, _)) = rest.rsplit_once('@') {
        if let Some((_, pw)) = auth.split_once(':') {
            crate::redact::register(pw);
        } else {
            crate::redact::register(auth);
        }
    }
}

/// Checks a backend URL before anything is sent (exit 2 when it is malformed).
pub fn check_url(url: &str, from: &str) -> Result<()> {
    register_secrets(url);
    redis::Client::open(url).map(|_| ()).map_err(|e| {
        Error::config(format!(
            "{from}: `{}` is not a Redis address: {}",
            redacted(url),
            crate::redact::scrub(&e.to_string())
        ))
        .hint("use redis://[:password@]host:port/db or rediss://… for TLS")
    })
}

/// The one connection of this process to one Redis.
pub struct Redis {
    client: redis::Client,
    shown: String,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    failed: Mutex<Option<(Instant, String)>>,
}

/// The runtime the Redis client lives on: current-thread, driven by a thread of its own.
fn runtime() -> std::io::Result<&'static tokio::runtime::Handle> {
    static RT: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("slackctl-redis".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .ok()?;
        Some(handle)
    })
    .as_ref()
    .ok_or_else(|| std::io::Error::other("cannot start the Redis client's runtime"))
}

/// The shared connection to `url` (one per process and address).
pub fn connect(url: &str) -> Result<Arc<Redis>> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<Redis>>>> = OnceLock::new();
    check_url(url, "state backend")?;
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(r) = all.get(url) {
        return Ok(r.clone());
    }
    let client = redis::Client::open(url).map_err(|e| Error::config(e.to_string()))?;
    let r = Arc::new(Redis {
        client,
        shown: redacted(url),
        conn: tokio::sync::Mutex::new(None),
        failed: Mutex::new(None),
    });
    all.insert(url.to_string(), r.clone());
    Ok(r)
}

impl Redis {
    /// The address for messages (no password).
    pub fn describe(&self) -> String {
        format!("the Redis state backend {}", self.shown)
    }

    fn error(&self, e: impl std::fmt::Display) -> std::io::Error {
        std::io::Error::other(format!(
            "{} is unreachable: {}",
            self.describe(),
            crate::redact::scrub(&e.to_string())
        ))
    }

    async fn connection(&self) -> std::io::Result<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        if let Some((at, why)) = self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            && at.elapsed() < RETRY_AFTER_FAILURE
        {
            return Err(std::io::Error::other(why));
        }
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
        {
            Ok(c) => {
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                let err = self.error(e);
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), err.to_string()));
                Err(err)
            }
        }
    }

    /// Runs one exchange on the connection and waits for its answer (blocking the caller,
    /// never the connection). Any failure drops the connection; the next call reconnects.
    pub fn exec<T, F, Fut>(self: &Arc<Self>, f: F) -> std::io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(MultiplexedConnection) -> Fut + Send + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        let this = self.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime()?.spawn(async move {
            let out = match this.connection().await {
                Ok(c) => match f(c).await {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        // A script or type error is ours, not the network's: keep the
                        // connection for those.
                        if e.is_io_error()
                            || e.is_timeout()
                            || e.is_connection_dropped()
                            || e.is_unrecoverable_error()
                        {
                            *this.conn.lock().await = None;
                            Err(this.error(e))
                        } else {
                            Err(std::io::Error::other(format!(
                                "{}: {}",
                                this.describe(),
                                crate::redact::scrub(&e.to_string())
                            )))
                        }
                    }
                },
                Err(e) => Err(e),
            };
            let _ = tx.send(out);
        });
        rx.recv_timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT + Duration::from_secs(1))
            .map_err(|_| self.error("no answer in time"))?
    }

    /// Like [`Redis::exec`], but errors are slackctl errors (exit 1) for callers that
    /// return those.
    pub fn run<T, F, Fut>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(MultiplexedConnection) -> Fut + Send + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        self.exec(f).map_err(|e| Error::failed(e.to_string()))
    }

    /// Starts `f` on the client's runtime without waiting (background upkeep such as lease
    /// refreshes).
    pub fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        if let Ok(rt) = runtime() {
            rt.spawn(f);
        }
    }
}

/// The key prefix of everything slackctl keeps in Redis.
pub const PREFIX: &str = "slackctl:";

/// The bucket arithmetic of [`super::pace::take_from`], run by the server on its own clock:
/// refill, take one token, and answer how long (seconds) the caller waits for its start.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local interval = 1 / math.max(rate, 0.000001)
local tolerance = interval * (math.max(burst, 1) - 1)
local s = redis.call('HMGET', KEYS[1], 'tat', 'blk')
local tat, blk = tonumber(s[1]) or 0, tonumber(s[2]) or 0
local start = math.max(now, tat - tolerance, blk)
tat = math.max(tat, start) + interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, blk) - now + 60) * 1000))
return string.format('%.6f', start - now)
";

/// A `Retry-After` block: nobody starts a call on the key for ARGV[1] seconds.
const BLOCK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'tat', 'blk')
local tat, blk = tonumber(s[1]) or 0, tonumber(s[2]) or 0
blk = math.max(blk, now + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'blk', string.format('%.6f', blk))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, blk) - now + 60) * 1000))
return 1
";

fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Pacing state in Redis, shared by every host pointed at it.
pub struct RedisPace {
    redis: Arc<Redis>,
}

impl RedisPace {
    pub fn new(redis: Arc<Redis>) -> RedisPace {
        RedisPace { redis }
    }
}

impl super::pace::PaceStore for RedisPace {
    fn take(&self, key: &str, bucket: super::pace::Bucket, now: f64) -> std::io::Result<f64> {
        let key = format!("{PREFIX}pace:{key}");
        let delay: String = self.redis.exec(move |mut c| async move {
            redis::Script::new(TAKE)
                .key(key)
                .arg(bucket.rate)
                .arg(bucket.burst)
                .invoke_async(&mut c)
                .await
        })?;
        // The server said how long from its now; the caller counts from its own.
        Ok(now + delay.parse::<f64>().unwrap_or(0.0).max(0.0))
    }

    fn block(&self, key: &str, until: f64) -> std::io::Result<()> {
        let key = format!("{PREFIX}pace:{key}");
        let secs = (until - wall_clock()).max(0.0);
        self.redis.exec(move |mut c| async move {
            redis::Script::new(BLOCK)
                .key(key)
                .arg(secs)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
    }

    fn cache_get(&self, key: &str, _now: f64) -> std::io::Result<Option<String>> {
        let key = format!("{PREFIX}cache:{key}");
        self.redis
            .exec(move |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
    }

    fn cache_put(&self, entries: &[(String, String)], _now: f64, ttl: f64) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let ms = (ttl * 1000.0).max(1.0) as u64;
        for (k, v) in entries {
            pipe.cmd("SET")
                .arg(format!("{PREFIX}cache:{k}"))
                .arg(v)
                .arg("PX")
                .arg(ms)
                .ignore();
        }
        self.redis
            .exec(move |mut c| async move { pipe.query_async::<()>(&mut c).await })
    }

    fn describe(&self) -> String {
        self.redis.describe()
    }

    fn required(&self) -> bool {
        true
    }
}

/// How long a journal holder counts as alive without refreshing its lease; refreshed every
/// second, so only a holder that died (or lost Redis) for this long lets others take over its
/// claims.
const LEASE_MS: u64 = 5000;

/// `TIME` in milliseconds, for the journal scripts.
const NOW_MS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// Claims ARGV[1] for holder ARGV[2] unless it was sent, or a live holder has it.
const CLAIM: &str = r"
redis.call('HSET', KEYS[3], ARGV[2], now + tonumber(ARGV[3]))
local e = redis.call('HGET', KEYS[1], ARGV[1])
if e then return {'sent', e} end
local h = redis.call('HGET', KEYS[2], ARGV[1])
if h and h ~= ARGV[2] then
  local exp = tonumber(redis.call('HGET', KEYS[3], h) or '0') or 0
  if exp > now then return {'elsewhere', h} end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {'claimed', h or '', ARGV[1]}
";

/// Registers holder ARGV[1], and returns (and drops) the claims of holders whose lease
/// lapsed: records that were in flight when their process died.
const ADOPT: &str = r"
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
local out = {}
local claims = redis.call('HGETALL', KEYS[1])
for i = 1, #claims, 2 do
  local exp = tonumber(redis.call('HGET', KEYS[2], claims[i + 1]) or '0') or 0
  if exp <= now then
    table.insert(out, claims[i])
    redis.call('HDEL', KEYS[1], claims[i])
  end
end
local hs = redis.call('HGETALL', KEYS[2])
for i = 1, #hs, 2 do
  if (tonumber(hs[i + 1]) or 0) <= now then redis.call('HDEL', KEYS[2], hs[i]) end
end
return out
";

/// Refreshes holder ARGV[1]'s lease.
const RENEW: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
return 1
";

/// Splits `redis://…/[db/]name` into the server's URL and the journal's name.
pub fn journal_address(state: &str) -> Result<(String, String)> {
    let (scheme, rest) = state.split_once("://").unwrap_or(("redis", state));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (db, name) = match parts.as_slice() {
        [name] => ("0", *name),
        [db, name] if db.parse::<u32>().is_ok() => (*db, *name),
        _ => {
            return Err(Error::usage(format!(
                "--state {}: a Redis journal is redis://host:port/[db/]name",
                redacted(state)
            ))
            .hint("e.g. --state redis://redis.example:6379/0/newsletter"));
        }
    };
    Ok((format!("{scheme}://{authority}/{db}"), name.to_string()))
}

fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}:{}:{nanos:08x}", std::process::id())
}

/// The send-once journal in Redis, shared by every host given the same name. Unlike the local
/// file it is not owned by one run: any number of runs claim records from it at once.
pub struct RedisJournal {
    redis: Arc<Redis>,
    keys: [String; 3],
    holder: String,
    interrupted: Vec<String>,
    alive: Arc<std::sync::atomic::AtomicBool>,
}

fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{NOW_MS}{body}"))
}

impl RedisJournal {
    /// Opens journal `name`: registers this run as a holder (its lease refreshed every second
    /// while it runs) and adopts the claims of holders that died.
    pub fn open(redis: Arc<Redis>, name: &str) -> Result<RedisJournal> {
        let base = format!("{PREFIX}journal:{{{name}}}");
        let keys = [
            format!("{base}:sent"),
            format!("{base}:claims"),
            format!("{base}:holders"),
        ];
        let holder = holder_id();
        let (claims, holders, me) = (keys[1].clone(), keys[2].clone(), holder.clone());
        let interrupted: Vec<String> = redis.run(move |mut c| async move {
            script(ADOPT)
                .key(claims)
                .key(holders)
                .arg(me)
                .arg(LEASE_MS)
                .invoke_async(&mut c)
                .await
        })?;
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (flag, r, holders, me) = (
            alive.clone(),
            redis.clone(),
            keys[2].clone(),
            holder.clone(),
        );
        redis.spawn(async move {
            let renew = script(RENEW);
            while flag.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                if let Ok(mut c) = r.connection().await {
                    let _ = renew
                        .key(&holders)
                        .arg(&me)
                        .arg(LEASE_MS)
                        .invoke_async::<i64>(&mut c)
                        .await;
                }
            }
        });
        Ok(RedisJournal {
            redis,
            keys,
            holder,
            interrupted,
            alive,
        })
    }
}

impl Drop for RedisJournal {
    fn drop(&mut self) {
        self.alive
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let (holders, me) = (self.keys[2].clone(), self.holder.clone());
        let _ = self.redis.exec(move |mut c| async move {
            redis::cmd("HDEL")
                .arg(holders)
                .arg(me)
                .query_async::<i64>(&mut c)
                .await
        });
    }
}

fn entry_of(text: &str) -> super::journal::Entry {
    serde_json::from_str(text).unwrap_or_default()
}

impl super::journal::Journal for RedisJournal {
    fn get(&self, id: &str) -> Result<Option<super::journal::Entry>> {
        let (sent, id) = (self.keys[0].clone(), id.to_string());
        let v: Option<String> = self.redis.run(move |mut c| async move {
            redis::cmd("HGET")
                .arg(sent)
                .arg(id)
                .query_async(&mut c)
                .await
        })?;
        Ok(v.as_deref().map(entry_of))
    }

    fn all_sent(&self) -> Result<Vec<(String, super::journal::Entry)>> {
        let sent = self.keys[0].clone();
        let all: Vec<(String, String)> = self.redis.run(move |mut c| async move {
            redis::cmd("HGETALL").arg(sent).query_async(&mut c).await
        })?;
        Ok(all.into_iter().map(|(k, v)| (k, entry_of(&v))).collect())
    }

    fn interrupted(&self) -> &[String] {
        &self.interrupted
    }

    fn claim(&mut self, id: &str) -> Result<super::journal::Claim> {
        let [sent, claims, holders] = self.keys.clone();
        let (id, me) = (id.to_string(), self.holder.clone());
        let answer: Vec<String> = self.redis.run(move |mut c| async move {
            script(CLAIM)
                .key(sent)
                .key(claims)
                .key(holders)
                .arg(id)
                .arg(me)
                .arg(LEASE_MS)
                .invoke_async(&mut c)
                .await
        })?;
        use super::journal::Claim;
        let other = answer.get(1).map(String::as_str).unwrap_or("");
        Ok(match answer.first().map(String::as_str) {
            Some("sent") => Claim::Sent(entry_of(other)),
            Some("elsewhere") => Claim::Elsewhere,
            _ => {
                if !other.is_empty() && other != self.holder {
                    // Taken over from a holder that died mid-send: it may have gone out.
                    crate::log::warn(&format!(
                        "record {} was in flight at {other} when it stopped; Slack may or may not have it, and it is sent again (so may appear twice)",
                        answer.get(2).map(String::as_str).unwrap_or("?")
                    ));
                }
                Claim::Claimed
            }
        })
    }

    fn mark_sent(&mut self, id: &str, entry: super::journal::Entry) -> Result<()> {
        let [sent, claims, _] = self.keys.clone();
        let (id, text) = (
            id.to_string(),
            serde_json::to_string(&entry).unwrap_or_default(),
        );
        self.redis.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&sent)
                .arg(&id)
                .arg(text)
                .ignore()
                .cmd("HDEL")
                .arg(&claims)
                .arg(&id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
    }

    fn release(&mut self, id: &str) -> Result<()> {
        let (claims, id) = (self.keys[1].clone(), id.to_string());
        self.redis.run(move |mut c| async move {
            redis::cmd("HDEL")
                .arg(claims)
                .arg(id)
                .query_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
    }

    fn forget(&mut self, id: &str) -> Result<()> {
        let (sent, id) = (self.keys[0].clone(), id.to_string());
        self.redis.run(move |mut c| async move {
            redis::cmd("HDEL")
                .arg(sent)
                .arg(id)
                .query_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
    }
}

/// How long a sensor's claim on a message stays pending before it counts as abandoned: a
/// batch is claimed, written and committed within milliseconds, so only a sensor that died
/// (or stalled this long) between its claim and its commit leaves one behind.
const PENDING_MS: u64 = 1000;
/// How long a sensor waits for another sensor's pending claim to be committed or abandoned.
const PENDING_WAIT: Duration = Duration::from_millis(1300);

/// Claims each message of a batch: ARGV[1] holder, ARGV[2] pending ms, then one count per
/// message (its keys, in order, are the next KEYS). Answers per message: 1 ours (now pending
/// under our name), 0 emitted by another sensor, 2 pending at another sensor.
const SEEN_CLAIM: &str = r"
local out, k = {}, 1
for m = 3, #ARGV do
  local n, verdict = tonumber(ARGV[m]), 1
  for i = k, k + n - 1 do
    local v = redis.call('GET', KEYS[i])
    if v == 'done' then verdict = 0; break end
    if v and v ~= ARGV[1] then verdict = 2 end
  end
  if verdict == 1 then
    for i = k, k + n - 1 do redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
  end
  table.insert(out, verdict)
  k = k + n
end
return out
";

/// The sensor's dedupe record in Redis, shared by every sensor of the app: one key per
/// message key, `pending` (the claiming sensor's name, expiring after [`PENDING_MS`]) from
/// the claim until the batch is sealed, then `done` for the record's TTL.
pub struct RedisSeen {
    redis: Arc<Redis>,
    ttl: u64,
    holder: String,
    /// Keys claimed since the last seal.
    claimed: Vec<String>,
}

fn seen_key(k: u64) -> String {
    format!("{PREFIX}seen:{k:016x}")
}

impl RedisSeen {
    pub fn new(redis: Arc<Redis>, ttl_secs: u64) -> RedisSeen {
        RedisSeen {
            redis,
            ttl: ttl_secs.max(1),
            holder: holder_id(),
            claimed: Vec::new(),
        }
    }

    fn claim_once(&self, messages: &[&super::seen::MessageKeys]) -> std::io::Result<Vec<i64>> {
        let mut keys = Vec::new();
        let mut counts = Vec::new();
        for m in messages {
            let ks: Vec<String> = m.iter().flatten().map(|k| seen_key(*k)).collect();
            counts.push(ks.len());
            keys.extend(ks);
        }
        let holder = self.holder.clone();
        self.redis.exec(move |mut c| async move {
            let script = redis::Script::new(SEEN_CLAIM);
            let mut call = script.prepare_invoke();
            for k in &keys {
                call.key(k);
            }
            call.arg(&holder).arg(PENDING_MS);
            for n in &counts {
                call.arg(*n);
            }
            call.invoke_async(&mut c).await
        })
    }
}

impl super::seen::SeenStore for RedisSeen {
    fn describe(&self) -> String {
        self.redis.describe()
    }

    fn load(&mut self, _now: u64) -> std::io::Result<super::seen::Loaded> {
        // The server holds the keys (and expires them). A sensor started while Redis is down
        // runs, acknowledging nothing until it is back, rather than exiting.
        if let Err(e) = self
            .redis
            .exec(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
        {
            crate::log::warn(&format!(
                "{e}; no message is emitted or acknowledged until it answers (Slack delivers them again)"
            ));
        }
        Ok(super::seen::Loaded::default())
    }

    fn claim(
        &mut self,
        messages: &[super::seen::MessageKeys],
        _now: u64,
    ) -> std::io::Result<Vec<bool>> {
        let mut verdict: Vec<Option<bool>> = messages
            .iter()
            .map(|m| m.iter().all(Option::is_none).then_some(true))
            .collect();
        let deadline = Instant::now() + PENDING_WAIT;
        loop {
            let open: Vec<usize> = (0..messages.len())
                .filter(|i| verdict[*i].is_none())
                .collect();
            if open.is_empty() {
                break;
            }
            let batch: Vec<&super::seen::MessageKeys> =
                open.iter().map(|i| &messages[*i]).collect();
            let answers = self.claim_once(&batch)?;
            let mut waiting = false;
            for (i, a) in open.iter().zip(answers) {
                match a {
                    1 => {
                        verdict[*i] = Some(true);
                        self.claimed
                            .extend(messages[*i].iter().flatten().map(|k| seen_key(*k)));
                    }
                    0 => verdict[*i] = Some(false),
                    _ => waiting = true,
                }
            }
            if !waiting {
                break;
            }
            if Instant::now() >= deadline {
                // Still pending elsewhere after the pending time: that sensor is alive and
                // slow; it emits them.
                for i in open {
                    verdict[i].get_or_insert(false);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(verdict.into_iter().map(|v| v.unwrap_or(false)).collect())
    }

    fn seal(&mut self) -> std::io::Result<super::seen::SyncJob> {
        let keys = std::mem::take(&mut self.claimed);
        let (redis, ttl) = (self.redis.clone(), self.ttl);
        Ok(Box::new(move || {
            if keys.is_empty() {
                return Ok(());
            }
            redis.exec(move |mut c| async move {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("SET")
                        .arg(k)
                        .arg("done")
                        .arg("EX")
                        .arg(ttl)
                        .ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
        }))
    }

    fn tidy(
        &mut self,
        _live: &mut dyn Iterator<Item = (u64, u64)>,
        _count: usize,
    ) -> std::io::Result<()> {
        Ok(())
    }

    fn required(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pace::{Bucket, KeyState, PaceStore, take_from};

    /// A `redis-server` on a free loopback port, or None (said) when it is not installed;
    /// under `CI=true` a missing server fails instead.
    fn server() -> Option<(std::process::Child, u16)> {
        if std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server is not installed"
            );
            eprintln!("SKIPPED: redis-server is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &port.to_string(), "--dir"])
            .arg(std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some((child, port))
    }

    #[test]
    fn the_take_script_runs_the_same_arithmetic_as_take_from() {
        let Some((mut child, port)) = server() else {
            return;
        };
        let store = RedisPace::new(connect(&format!("redis://127.0.0.1:{port}/0")).unwrap());
        let check = |key: &str, bucket: Bucket, n: usize| {
            let mut local = KeyState::default();
            for _ in 0..n {
                let now = wall_clock();
                let want = take_from(&mut local, bucket, now) - now;
                let got = store.take(key, bucket, now).unwrap() - now;
                // The two clocks advance between calls by the time a round trip takes.
                assert!((got - want).abs() < 0.1, "{key}: {got} against {want}");
            }
        };
        check(
            "channel",
            Bucket {
                rate: 1.0,
                burst: 3,
            },
            6,
        );
        check(
            "tier",
            Bucket {
                rate: 8.0 / 60.0,
                burst: 2,
            },
            3,
        );
        // A block holds every take until it ends.
        store.block("blocked", wall_clock() + 5.0).unwrap();
        let now = wall_clock();
        let wait = store
            .take(
                "blocked",
                Bucket {
                    rate: 100.0,
                    burst: 10,
                },
                now,
            )
            .unwrap()
            - now;
        assert!((wait - 5.0).abs() < 0.1, "{wait}");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn passwords_never_show_in_the_address() {
        assert_eq!(
            redacted("rediss://:hunter2pw@cache.example:6380/3"),
            "rediss://[redacted]@cache.example:6380/3"
        );
        assert_eq!(
            redacted("redis://slack:pw@10.0.0.1:6379/0"),
            "redis://[redacted]@10.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://h:1/0"), "redis://h:1/0");
        register_secrets("redis://u:a-long-password@h:1/0");
        assert_eq!(
            crate::redact::scrub("x a-long-password y"),
            "x [redacted] y"
        );
        assert!(check_url("redis://h:6379/0", "t").is_ok());
        assert!(check_url("redis://h:notaport/0", "t").is_err());
    }
}
