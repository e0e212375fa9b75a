//! User and conversation details for trigger payloads, from `users.info` and
//! `conversations.info`, kept in bounded caches (size limit plus time to live) so a warm
//! sensor makes no API call per message. A failed lookup is remembered for a short while and
//! logged once; the message is then emitted with the ids it has.
//!
//! Lookups never hold up Slack's 3-second acknowledgement deadline: each runs in its own task
//! (up to [`MAX_IN_FLIGHT`] at once), and a message waits for its own lookups only until its
//! deadline ([`LOOKUP_BUDGET`] after it was received). A message whose names are not known by
//! then goes out with its ids and `"enrichment": "partial"`; the lookup carries on and fills
//! the cache for the next message.

use super::payload::{ChannelInfo, UserInfo};
use super::strip::Names;
use crate::fnv::FnvMap;
use crate::redact::Secret;
use crate::transport::{Body, Client, Request};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a looked-up user stays fresh.
pub const USER_TTL: Duration = Duration::from_secs(3600);
/// Channels change more often (topic, name).
pub const CHANNEL_TTL: Duration = Duration::from_secs(600);
/// A failed lookup is not retried for this long.
pub const FAILURE_TTL: Duration = Duration::from_secs(60);
/// The longest a message waits for its lookups, counted from when it was received, before it
/// is emitted with ids only.
pub const LOOKUP_BUDGET: Duration = Duration::from_millis(1500);
/// A lookup running in the background gives up after this long.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lookups running at once at most; beyond this, messages go out partial (a burst of new
/// users must not turn into a burst of calls that meets Slack's rate limits).
pub const MAX_IN_FLIGHT: usize = 32;

enum Entry<T> {
    Found { value: T, at: Instant },
    Failed { at: Instant },
}

/// A bounded cache of Web API objects (as the payload needs them) by id.
pub struct Cache<T> {
    map: FnvMap<String, Entry<T>>,
    ttl: Duration,
    capacity: usize,
}

impl<T> Cache<T> {
    pub fn new(ttl: Duration, capacity: usize) -> Cache<T> {
        Cache {
            map: FnvMap::default(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The cached object, fresh or stale (a stale one is better than none when Slack fails).
    fn value(&self, id: &str) -> Option<&T> {
        match self.map.get(id) {
            Some(Entry::Found { value, .. }) => Some(value),
            _ => None,
        }
    }

    /// Whether a lookup is due: never looked up, expired, or failed long enough ago.
    fn due(&self, id: &str, now: Instant) -> bool {
        match self.map.get(id) {
            None => true,
            Some(Entry::Found { at, .. }) => now.duration_since(*at) >= self.ttl,
            Some(Entry::Failed { at }) => now.duration_since(*at) >= FAILURE_TTL,
        }
    }

    fn put(&mut self, id: &str, entry: Entry<T>, now: Instant) {
        if self.map.len() >= self.capacity && !self.map.contains_key(id) {
            let ttl = self.ttl;
            self.map.retain(|_, e| match e {
                Entry::Found { at, .. } => now.duration_since(*at) < ttl,
                Entry::Failed { at } => now.duration_since(*at) < FAILURE_TTL,
            });
            if self.map.len() >= self.capacity {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| match e {
                        Entry::Found { at, .. } | Entry::Failed { at } => *at,
                    })
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(id.to_string(), entry);
    }

    /// Remembers a failure, keeping any stale value to fall back on.
    fn fail(&mut self, id: &str, now: Instant) {
        match self.map.get_mut(id) {
            // Retry the refresh after FAILURE_TTL, serving the stale value meanwhile.
            Some(Entry::Found { at, .. }) => {
                *at = now
                    .checked_sub(self.ttl.saturating_sub(FAILURE_TTL))
                    .unwrap_or(now)
            }
            _ => self.put(id, Entry::Failed { at: now }, now),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum What {
    User,
    Channel,
}

/// A finished lookup, sent back by its task.
type Done = (What, String, Result<Value, String>);

/// Looks up users and channels for the pipeline.
pub struct Enricher {
    api: Option<(Client, Secret)>,
    users: Cache<UserInfo>,
    channels: Cache<ChannelInfo>,
    /// Ids whose failure was already logged (bounded: cleared when large).
    logged: HashSet<(bool, String)>,
    /// Lookups started and not yet answered.
    in_flight: HashSet<(What, String)>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
}

/// Whether a message's names are all known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    All,
    /// Some user or channel has no cached details (lookup slow, failed or not possible).
    Partial,
}

impl Enricher {
    /// `api` is `None` when no Web API token is configured: payloads then carry ids only.
    pub fn new(api: Option<(Client, Secret)>) -> Enricher {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Enricher {
            api,
            users: Cache::new(USER_TTL, 20_000),
            channels: Cache::new(CHANNEL_TTL, 5_000),
            logged: HashSet::new(),
            in_flight: HashSet::new(),
            done_tx,
            done_rx,
        }
    }

    pub fn enabled(&self) -> bool {
        self.api.is_some()
    }

    pub fn user(&self, id: &str) -> Option<&UserInfo> {
        self.users.value(id)
    }

    pub fn channel(&self, id: &str) -> Option<&ChannelInfo> {
        self.channels.value(id)
    }

    /// Makes sure the given users and channels are cached: starts the lookups that are due
    /// (each in its own task), then waits for them until `deadline` at the latest. Says whether
    /// every one of them is known.
    pub async fn warm<'a>(
        &mut self,
        users: impl IntoIterator<Item = &'a str>,
        channels: impl IntoIterator<Item = &'a str>,
        deadline: Instant,
    ) -> Known {
        if self.api.is_none() {
            return Known::All;
        }
        self.take_finished();
        let now = Instant::now();
        let wanted: Vec<(What, &str)> = users
            .into_iter()
            .map(|u| (What::User, u))
            .chain(channels.into_iter().map(|c| (What::Channel, c)))
            .filter(|(_, id)| !id.is_empty())
            .collect();
        // Usually everything is cached: nothing to start, nothing to wait for.
        if wanted.iter().all(|(w, id)| !self.due(*w, id, now)) {
            return self.known(&wanted);
        }
        for &(what, id) in &wanted {
            if self.due(what, id, now) {
                self.start(what, id);
            }
        }
        while wanted
            .iter()
            .any(|(w, id)| self.in_flight.contains(&(*w, (*id).to_string())))
        {
            match tokio::time::timeout_at(deadline.into(), self.done_rx.recv()).await {
                Ok(Some(done)) => self.finish(done),
                // Out of time: the lookups go on, this message goes out with what is known.
                Ok(None) | Err(_) => break,
            }
        }
        self.known(&wanted)
    }

    fn known(&self, wanted: &[(What, &str)]) -> Known {
        let all = wanted.iter().all(|(w, id)| match w {
            What::User => self.users.value(id).is_some(),
            What::Channel => self.channels.value(id).is_some(),
        });
        if all { Known::All } else { Known::Partial }
    }

    /// Starts one lookup in its own task, unless it already runs or too many do.
    fn start(&mut self, what: What, id: &str) {
        let Some((client, token)) = self.api.clone() else {
            return;
        };
        if self.in_flight.len() >= MAX_IN_FLIGHT || !self.in_flight.insert((what, id.to_string())) {
            return;
        }
        let tx = self.done_tx.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let result =
                match tokio::time::timeout(LOOKUP_TIMEOUT, fetch(&client, &token, what, &id)).await
                {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {}s", LOOKUP_TIMEOUT.as_secs())),
                };
            let _ = tx.send((what, id, result));
        });
    }

    /// Files every lookup answered since the last look.
    fn take_finished(&mut self) {
        while let Ok(done) = self.done_rx.try_recv() {
            self.finish(done);
        }
    }

    fn finish(&mut self, (what, id, result): Done) {
        self.in_flight.remove(&(what, id.clone()));
        let now = Instant::now();
        match (result, what) {
            (Ok(v), What::User) => {
                let value = UserInfo::of(&v);
                self.users.put(&id, Entry::Found { value, at: now }, now);
            }
            (Ok(v), What::Channel) => {
                let value = ChannelInfo::of(&v);
                self.channels.put(&id, Entry::Found { value, at: now }, now);
            }
            (Err(why), _) => {
                match what {
                    What::User => self.users.fail(&id, now),
                    What::Channel => self.channels.fail(&id, now),
                }
                self.log_failure(what, &id, &why);
            }
        }
    }

    fn due(&self, what: What, id: &str, now: Instant) -> bool {
        match what {
            What::User => self.users.due(id, now),
            What::Channel => self.channels.due(id, now),
        }
    }

    fn log_failure(&mut self, what: What, id: &str, why: &str) {
        if self.logged.len() > 10_000 {
            self.logged.clear();
        }
        if self.logged.insert((what == What::User, id.to_string())) {
            let method = match what {
                What::User => "users.info",
                What::Channel => "conversations.info",
            };
            crate::log::warn(&format!(
                "{method} for {id} failed ({why}); its messages are emitted with the id only"
            ));
        }
    }

    /// Names for strip formatting, from the caches only.
    pub fn names(&self) -> CachedNames<'_> {
        CachedNames { e: self }
    }
}

async fn fetch(client: &Client, token: &Secret, what: What, id: &str) -> Result<Value, String> {
    let (method, arg, field) = match what {
        What::User => ("users.info", "user", "user"),
        What::Channel => ("conversations.info", "channel", "channel"),
    };
    let req = Request {
        method,
        body: Body::Query(vec![(arg.to_string(), id.to_string())]),
        token: Some(token),
        idempotent: true,
        // Not paced: a lookup may never hold up an acknowledgement; the caches keep the
        // call rate low, and a 429 is retried within the lookup budget.
        pace: None,
    };
    match client.call(&req).await {
        Ok(resp) => resp
            .body
            .get(field)
            .filter(|v| v.is_object())
            .cloned()
            .ok_or_else(|| format!("answer has no `{field}`")),
        Err(e) => Err(e.message),
    }
}

/// [`Names`] backed by the enrichment caches.
pub struct CachedNames<'a> {
    e: &'a Enricher,
}

impl Names for CachedNames<'_> {
    fn user(&self, id: &str) -> Option<String> {
        self.e.user(id)?.display.clone()
    }
    fn channel(&self, id: &str) -> Option<String> {
        self.e.channel(id)?.name.clone()
    }
    fn subteam(&self, _: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cache_expires_bounds_and_keeps_stale_values() {
        let t0 = Instant::now();
        let mut c = Cache::<Value>::new(Duration::from_secs(100), 2);
        assert!(c.due("a", t0));
        c.put(
            "a",
            Entry::Found {
                value: json!(1),
                at: t0,
            },
            t0,
        );
        assert!(!c.due("a", t0 + Duration::from_secs(99)));
        assert!(c.due("a", t0 + Duration::from_secs(100)));
        c.put(
            "b",
            Entry::Found {
                value: json!(2),
                at: t0 + Duration::from_secs(1),
            },
            t0,
        );
        c.put(
            "c",
            Entry::Failed {
                at: t0 + Duration::from_secs(2),
            },
            t0 + Duration::from_secs(2),
        );
        assert_eq!(c.len(), 2, "bounded: the oldest entry went");
        assert!(c.value("a").is_none());
        assert!(
            !c.due("c", t0 + Duration::from_secs(3)),
            "failures are not retried at once"
        );
        assert!(c.due("c", t0 + Duration::from_secs(2) + FAILURE_TTL));
        // A failed refresh keeps the stale value and retries after FAILURE_TTL.
        let late = t0 + Duration::from_secs(500);
        c.fail("b", late);
        assert_eq!(c.value("b"), Some(&json!(2)));
        assert!(!c.due("b", late + Duration::from_secs(1)));
        assert!(c.due("b", late + FAILURE_TTL));
    }

    #[test]
    fn display_names_follow_slacks_order() {
        let mut e = Enricher::new(None);
        let now = Instant::now();
        let u = json!({"name": "ada", "profile": {"display_name": "", "real_name": "Ada L"}});
        let value = UserInfo::of(&u);
        e.users.put("U1", Entry::Found { value, at: now }, now);
        e.channels.put(
            "C1",
            Entry::Found {
                value: ChannelInfo::of(&json!({"name": "ops"})),
                at: now,
            },
            now,
        );
        let n = e.names();
        assert_eq!(n.user("U1").as_deref(), Some("Ada L"));
        assert_eq!(n.user("U2"), None);
        assert_eq!(n.channel("C1").as_deref(), Some("ops"));
    }
}
