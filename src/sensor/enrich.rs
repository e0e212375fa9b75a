//! User and conversation details for trigger payloads, from `users.info` and
//! `conversations.info`, kept in bounded caches (size limit plus time to live) so a warm
//! sensor makes no API call per message. A failed lookup is remembered for a short while and
//! logged once; the message is then emitted with the ids it has.

use super::payload::{ChannelInfo, UserInfo};
use super::strip::Names;
use crate::fnv::FnvMap;
use crate::redact::Secret;
use crate::transport::{Body, Client, Request};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long a looked-up user stays fresh.
pub const USER_TTL: Duration = Duration::from_secs(3600);
/// Channels change more often (topic, name).
pub const CHANNEL_TTL: Duration = Duration::from_secs(600);
/// A failed lookup is not retried for this long.
pub const FAILURE_TTL: Duration = Duration::from_secs(60);
/// The longest a message waits for its lookups before it is emitted with ids only.
pub const LOOKUP_BUDGET: Duration = Duration::from_millis(1500);

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

/// Looks up users and channels for the pipeline.
pub struct Enricher {
    api: Option<(Client, Secret)>,
    users: Cache<UserInfo>,
    channels: Cache<ChannelInfo>,
    /// Ids whose failure was already logged (bounded: cleared when large).
    logged: HashSet<(bool, String)>,
    budget: Duration,
}

impl Enricher {
    /// `api` is `None` when no Web API token is configured: payloads then carry ids only.
    pub fn new(api: Option<(Client, Secret)>) -> Enricher {
        Enricher {
            api,
            users: Cache::new(USER_TTL, 20_000),
            channels: Cache::new(CHANNEL_TTL, 5_000),
            logged: HashSet::new(),
            budget: LOOKUP_BUDGET,
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

    /// Makes sure the given users and channels are cached (looked up when due), within the
    /// time budget. Lookups run one after another on purpose: they are rare once warm, and
    /// a burst of parallel calls would only meet Slack's rate limits sooner.
    pub async fn warm<'a>(
        &mut self,
        users: impl IntoIterator<Item = &'a str>,
        channels: impl IntoIterator<Item = &'a str>,
    ) {
        if self.api.is_none() {
            return;
        }
        let mut now = Instant::now();
        let wanted = users
            .into_iter()
            .map(|u| (What::User, u))
            .chain(channels.into_iter().map(|c| (What::Channel, c)));
        // Usually everything is cached: find what is due without any allocation.
        let due: Vec<(What, &str)> = wanted
            .filter(|(what, id)| !id.is_empty() && self.due(*what, id, now))
            .collect();
        if due.is_empty() {
            return;
        }
        let Some((client, token)) = self.api.clone() else {
            return;
        };
        let deadline = now + self.budget;
        for (what, id) in due {
            now = Instant::now();
            if !self.due(what, id, now) {
                continue;
            }
            let left = deadline.saturating_duration_since(now);
            let result = if left.is_zero() {
                Err("no time left for the lookup".to_string())
            } else {
                match tokio::time::timeout(left, fetch(&client, &token, what, id)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "no answer within {:.1}s",
                        self.budget.as_secs_f64()
                    )),
                }
            };
            let now = Instant::now();
            match (result, what) {
                (Ok(v), What::User) => {
                    let value = UserInfo::of(&v);
                    self.users.put(id, Entry::Found { value, at: now }, now);
                }
                (Ok(v), What::Channel) => {
                    let value = ChannelInfo::of(&v);
                    self.channels.put(id, Entry::Found { value, at: now }, now);
                }
                (Err(why), _) => {
                    match what {
                        What::User => self.users.fail(id, now),
                        What::Channel => self.channels.fail(id, now),
                    }
                    self.log_failure(what, id, &why);
                }
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
