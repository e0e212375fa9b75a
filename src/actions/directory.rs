//! Names to IDs: the workspace's channels and users, fetched lazily (every page) and kept for
//! the rest of the run, so several lookups in one run cost one pass over each list.
//!
//! Slack wants IDs everywhere; people type `#ops` and `@jane.doe`. Channel names come from
//! `conversations.list` (public and private: a private channel is listed only to members),
//! user names from `users.list` (the legacy `name`, then `profile.display_name`).

use super::call;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::run::RunOptions;
use crate::transport::Client;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Lowercased user names → user ID. `name` wins over a display name that collides with it.
#[derive(Debug, Default)]
pub struct UserIndex {
    by_name: HashMap<String, String>,
    by_display: HashMap<String, String>,
}

impl UserIndex {
    /// Adds one `users.list` member (deleted accounts are skipped: they cannot be mentioned).
    pub fn add(&mut self, user: &Value) {
        if user.get("deleted").and_then(Value::as_bool) == Some(true) {
            return;
        }
        let Some(id) = user.get("id").and_then(Value::as_str) else {
            return;
        };
        if let Some(n) = user.get("name").and_then(Value::as_str)
            && !n.is_empty()
        {
            self.by_name.insert(n.to_lowercase(), id.to_string());
        }
        let profile = user.get("profile");
        for key in ["display_name", "display_name_normalized"] {
            if let Some(d) = profile.and_then(|p| p.get(key)).and_then(Value::as_str)
                && !d.is_empty()
            {
                self.by_display
                    .entry(d.to_lowercase())
                    .or_insert_with(|| id.to_string());
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let key = name.to_lowercase();
        self.by_name
            .get(&key)
            .or_else(|| self.by_display.get(&key))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The conversations visible to the token, with a name index.
#[derive(Debug, Default)]
pub struct ChannelIndex {
    pub channels: Vec<Value>,
    by_name: HashMap<String, usize>,
}

impl ChannelIndex {
    pub fn add(&mut self, channel: &Value) {
        if let Some(name) = channel.get("name").and_then(Value::as_str)
            && !name.is_empty()
        {
            self.by_name
                .entry(name.to_lowercase())
                .or_insert(self.channels.len());
        }
        self.channels.push(channel.clone());
    }

    /// The channel object named `name` (a leading `#` is ignored).
    pub fn get(&self, name: &str) -> Option<&Value> {
        let key = name.strip_prefix('#').unwrap_or(name).to_lowercase();
        self.by_name.get(&key).map(|&i| &self.channels[i])
    }

    pub fn id(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|c| c.get("id"))
            .and_then(Value::as_str)
    }
}

/// True for text shaped like a conversation ID (`C…`, `G…`, `D…`: upper-case letters and
/// digits). Channel names are lower-case, so the two cannot be confused; `#C0123` is a name.
pub fn looks_like_channel_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('C' | 'G' | 'D'))
        && s.len() >= 8
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Lazily loaded channel and user directories for one run.
pub struct Directory<'a> {
    client: &'a Client,
    settings: &'a Settings,
    /// The action's `token` parameter, passed on to the list calls.
    token: Option<Value>,
    channels: Option<ChannelIndex>,
    users: Option<UserIndex>,
}

impl<'a> Directory<'a> {
    pub fn new(client: &'a Client, settings: &'a Settings, params: &Map<String, Value>) -> Self {
        Directory {
            client,
            settings,
            token: params.get("token").cloned(),
            channels: None,
            users: None,
        }
    }

    fn list_args(&self, extra: Value) -> Map<String, Value> {
        let mut m = extra.as_object().cloned().unwrap_or_default();
        if let Some(t) = &self.token {
            m.insert("token".into(), t.clone());
        }
        m
    }

    /// Every public and private channel the token can see (one pass, then cached).
    pub async fn channels(&mut self) -> Result<&ChannelIndex> {
        if self.channels.is_none() {
            let mut index = ChannelIndex::default();
            let args = self.list_args(json!({"types": ["public_channel", "private_channel"]}));
            self.each_item("conversations.list", "channels", args, |c| index.add(c))
                .await?;
            self.channels = Some(index);
        }
        Ok(self.channels.get_or_insert_with(ChannelIndex::default))
    }

    /// Every user name of the workspace (one pass, then cached).
    pub async fn users(&mut self) -> Result<&UserIndex> {
        if self.users.is_none() {
            let mut index = UserIndex::default();
            let args = self.list_args(json!({}));
            self.each_item("users.list", "members", args, |u| index.add(u))
                .await?;
            self.users = Some(index);
        }
        Ok(self.users.get_or_insert_with(UserIndex::default))
    }

    /// Calls a list method through every page and hands each item of `field` to `add`.
    async fn each_item(
        &self,
        method: &str,
        field: &str,
        args: Map<String, Value>,
        mut add: impl FnMut(&Value) + Send,
    ) -> Result<()> {
        let mut on_page = |page: &Value, _: &[String]| {
            for item in page
                .get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add(item);
            }
            true
        };
        let all = RunOptions {
            all: true,
            retry_writes: false,
        };
        call(
            self.client,
            self.settings,
            method,
            args,
            all,
            Some(&mut on_page),
        )
        .await?;
        Ok(())
    }

    /// The directories loaded so far (for lookups after the async loading is done).
    pub fn loaded(&self) -> (Option<&UserIndex>, Option<&ChannelIndex>) {
        (self.users.as_ref(), self.channels.as_ref())
    }

    /// The channel object for a name (`ops` or `#ops`); a failure (exit 1) when no visible
    /// channel has that name.
    pub async fn channel_by_name(&mut self, name: &str) -> Result<Value> {
        let bare = name.trim().trim_start_matches('#');
        if bare.is_empty() {
            return Err(Error::usage("a channel name is required"));
        }
        match self.channels().await?.get(bare) {
            Some(c) => Ok(c.clone()),
            None => Err(not_found(bare)),
        }
    }

    /// A conversation ID for `raw`: an ID as is, else a name (with or without `#`) looked up.
    pub async fn channel_id(&mut self, raw: &str) -> Result<String> {
        let raw = raw.trim();
        if looks_like_channel_id(raw) {
            return Ok(raw.to_string());
        }
        let bare = raw.trim_start_matches('#');
        if bare.is_empty() {
            return Err(Error::usage("a channel ID or name is required"));
        }
        self.channels()
            .await?
            .id(bare)
            .map(str::to_string)
            .ok_or_else(|| not_found(bare))
    }
}

fn not_found(name: &str) -> Error {
    Error::failed(format!("no channel named #{name} is visible to this token"))
        .hint("private channels are listed only to their members: invite the bot first (/invite @your-bot)")
        .hint("names are looked up in conversations.list (public and private channels)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_told_apart() {
        assert!(looks_like_channel_id("C0123456789"));
        assert!(looks_like_channel_id("G0000001"));
        assert!(looks_like_channel_id("D0000001"));
        assert!(!looks_like_channel_id("c0123456789"));
        assert!(!looks_like_channel_id("#C0123456"));
        assert!(!looks_like_channel_id("C01"));
        assert!(!looks_like_channel_id("general"));
        assert!(!looks_like_channel_id("Cabcdefgh"));
    }

    #[test]
    fn user_names_win_over_display_names_and_deleted_users_are_skipped() {
        let mut u = UserIndex::default();
        u.add(&json!({"id": "U1", "name": "jane.doe", "profile": {"display_name": "Jane"}}));
        u.add(&json!({"id": "U2", "name": "jane", "profile": {"display_name": "jd"}}));
        u.add(&json!({"id": "U3", "name": "gone", "deleted": true}));
        assert_eq!(u.get("jane.doe"), Some("U1"));
        assert_eq!(u.get("Jane"), Some("U2"));
        assert_eq!(u.get("jd"), Some("U2"));
        assert_eq!(u.get("gone"), None);
        let mut c = ChannelIndex::default();
        c.add(&json!({"id": "C1", "name": "ops"}));
        assert_eq!(c.id("#ops"), Some("C1"));
        assert_eq!(c.id("OPS"), Some("C1"));
        assert_eq!(c.id("dev"), None);
    }
}
