//! The emulated workspace: seeded users and conversations, stored messages and files.
//!
//! Everything here is plain synchronous data that lives behind one mutex in the server. No
//! method in this file awaits or does I/O, so the lock is only ever held for a few
//! microseconds. Every message, whatever path it arrives by, is stored through
//! [`Workspace::post_message`], which also announces it on the broadcast channel.

use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

pub const TEAM_ID: &str = "T0EMULATOR";
pub const TEAM_NAME: &str = "Emulator Workspace";
pub const TEAM_DOMAIN: &str = "emulator";
/// The bot user behind the bot tokens.
pub const BOT_USER_ID: &str = "U0BOT";
pub const BOT_NAME: &str = "emulator-bot";
pub const BOT_ID: &str = "B0EMULATOR";
pub const APP_ID: &str = "A0EMULATOR";
pub const SLACKBOT_ID: &str = "USLACKBOT";
/// The human behind the user token: the workspace's primary owner.
pub const OWNER_ID: &str = "U0000001";
/// The `#general` channel, where the emulator's incoming webhook posts.
pub const GENERAL_ID: &str = "C0000001";
/// Seeded objects are dated from here (14 Nov 2023), well before anything posted live.
const SEED_EPOCH: u64 = 1_700_000_000;

/// The four conversation types of the Conversations API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Public,
    Private,
    Im,
    Mpim,
}

impl Kind {
    /// Reads one entry of the `types` argument of `conversations.list`.
    pub fn from_type_name(s: &str) -> Option<Kind> {
        match s {
            "public_channel" => Some(Kind::Public),
            "private_channel" => Some(Kind::Private),
            "im" => Some(Kind::Im),
            "mpim" => Some(Kind::Mpim),
            _ => None,
        }
    }

    /// `channel_type` as message events carry it.
    pub fn event_name(self) -> &'static str {
        match self {
            Kind::Public => "channel",
            Kind::Private => "group",
            Kind::Im => "im",
            Kind::Mpim => "mpim",
        }
    }
}

pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub deleted: bool,
    pub json: Value,
}

/// One stored message. `key` is the ts as an integer (microseconds), used to keep the list
/// sorted and to binary-search it; `ts` is the exact string handed out, which is what lookups
/// compare (Slack treats `1700000000.0001` and `1700000000.000100` as different).
pub struct Message {
    pub key: u64,
    pub ts: String,
    pub data: Map<String, Value>,
}

impl Message {
    /// Whether `conversations.history` shows it: thread parents, plain messages and replies
    /// that were also sent to the channel.
    pub fn in_history(&self) -> bool {
        match self.data.get("thread_ts").and_then(Value::as_str) {
            None => true,
            Some(t) => {
                t == self.ts
                    || self.data.get("subtype").and_then(Value::as_str) == Some("thread_broadcast")
            }
        }
    }

    pub fn thread_ts(&self) -> Option<&str> {
        self.data.get("thread_ts").and_then(Value::as_str)
    }

    /// The message as API answers show it.
    pub fn to_json(&self) -> Value {
        Value::Object(self.data.clone())
    }
}

pub struct Channel {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub created: u64,
    pub creator: String,
    pub archived: bool,
    pub is_general: bool,
    pub topic: Value,
    pub purpose: Value,
    pub members: BTreeSet<String>,
    /// Sorted by `key` (oldest first); replies live here too, next to their parents.
    pub messages: Vec<Message>,
}

impl Channel {
    /// Index of the message whose ts is exactly `ts`.
    pub fn find(&self, ts: &str) -> Option<usize> {
        let key = parse_ts(ts)?;
        let i = self.messages.binary_search_by_key(&key, |m| m.key).ok()?;
        (self.messages[i].ts == ts).then_some(i)
    }

    /// The conversation object as the Conversations API returns it to `viewer`.
    pub fn to_json(&self, viewer: &str) -> Value {
        if self.kind == Kind::Im {
            let other = self
                .members
                .iter()
                .find(|m| m.as_str() != viewer)
                .or_else(|| self.members.iter().next())
                .cloned()
                .unwrap_or_default();
            return json!({
                "id": self.id,
                "created": self.created,
                "is_im": true,
                "is_org_shared": false,
                "context_team_id": TEAM_ID,
                "user": other,
                "is_user_deleted": false,
                "is_archived": false,
                "is_open": true,
                "priority": 0,
            });
        }
        json!({
            "id": self.id,
            "name": self.name,
            "is_channel": matches!(self.kind, Kind::Public | Kind::Private),
            "is_group": false,
            "is_im": false,
            "is_mpim": self.kind == Kind::Mpim,
            "is_private": self.kind != Kind::Public,
            "created": self.created,
            "is_archived": self.archived,
            "is_general": self.is_general,
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": false,
            "is_org_shared": false,
            "is_ext_shared": false,
            "is_pending_ext_shared": false,
            "context_team_id": TEAM_ID,
            "creator": self.creator,
            "is_member": self.members.contains(viewer),
            "topic": self.topic,
            "purpose": self.purpose,
            "num_members": self.members.len(),
        })
    }
}

/// A file from the external upload flow (`files.getUploadURLExternal` onwards).
pub struct FileRec {
    pub id: String,
    pub name: String,
    pub title: String,
    /// The byte count announced in step 1.
    pub length: u64,
    /// Bytes received at the upload URL, once step 2 happened.
    pub received: Option<u64>,
    pub user: String,
    pub created: u64,
    pub completed: bool,
    /// (channel id, message ts) per share.
    pub shares: Vec<(String, String)>,
}

/// Who a new message is from.
#[derive(Debug, Clone)]
pub enum Author {
    /// A human (user token).
    User(String),
    /// The app's bot: through a bot token (`user` is the bot user) or through the incoming
    /// webhook (`user` is `None`, as Slack does for webhook posts).
    Bot {
        user: Option<String>,
        username: Option<String>,
    },
}

/// A message about to be stored.
pub struct NewMessage {
    pub author: Author,
    pub text: String,
    /// Extra fields copied onto the message (blocks, attachments, files, subtype, ...).
    pub extra: Map<String, Value>,
    pub thread_ts: Option<String>,
    /// `reply_broadcast`: a thread reply also shown in the channel.
    pub broadcast: bool,
}

pub struct Workspace {
    pub users: Vec<User>,
    user_idx: HashMap<String, usize>,
    email_idx: HashMap<String, usize>,
    pub channels: Vec<Channel>,
    chan_idx: HashMap<String, usize>,
    name_idx: HashMap<String, usize>,
    /// Sorted, comma-joined member ids of every DM and MPIM → channel id.
    direct: HashMap<String, String>,
    pub files: HashMap<String, FileRec>,
    pub invites: Vec<Value>,
    /// Messages waiting for their `post_at` (`chat.scheduleMessage`), see `responses.rs`.
    pub scheduled: Vec<super::responses::Scheduled>,
    next_id: u64,
    last_ts: u64,
    events: broadcast::Sender<Value>,
    pub base_url: String,
}

/// Parses a Slack ts (`"1700000000.000100"`) into microseconds, without going through a float.
pub fn parse_ts(ts: &str) -> Option<u64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    if secs.is_empty()
        || secs.len() > 12
        || frac.len() > 6
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut micros: u64 = 0;
    for i in 0..6 {
        micros = micros * 10 + frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
    }
    secs.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(micros)
}

pub fn format_ts(key: u64) -> String {
    format!("{}.{:06}", key / 1_000_000, key % 1_000_000)
}

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Barbara",
    "Dennis",
    "Edsger",
    "Frances",
    "Guido",
    "Hedy",
    "Ivan",
    "Joan",
    "Ken",
    "Leslie",
    "Margaret",
    "Niklaus",
    "Ole",
    "Radia",
    "Sophie",
    "Tim",
    "Ursula",
    "Vint",
    "Whitfield",
    "Xavier",
    "Yukihiro",
    "Zhores",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Liskov",
    "Ritchie",
    "Dijkstra",
    "Allen",
    "Rossum",
    "Lamarr",
    "Sutherland",
    "Clarke",
    "Thompson",
    "Lamport",
    "Hamilton",
    "Wirth",
    "Dahl",
    "Perlman",
    "Wilson",
    "Berners-Lee",
    "Martin",
    "Cerf",
    "Diffie",
    "Leroy",
    "Matsumoto",
    "Alferov",
];
const TITLES: &[&str] = &[
    "Engineer",
    "Designer",
    "Product Manager",
    "Site Reliability Engineer",
    "Support Lead",
    "Data Scientist",
];
/// Public channels after general, random and ops (24 active public channels in all).
const MORE_CHANNELS: &[&str] = &[
    "announcements",
    "backend",
    "data",
    "design",
    "docs",
    "engineering",
    "finance",
    "frontend",
    "hr",
    "incidents",
    "infra",
    "legal",
    "marketing",
    "mobile",
    "oncall",
    "product",
    "qa",
    "releases",
    "sales",
    "security",
    "support",
];

fn user_json(
    id: &str,
    name: &str,
    first: &str,
    last: &str,
    email: Option<&str>,
    title: &str,
    flags: (bool, bool, bool, bool),
) -> Value {
    let (admin, owner, primary, deleted) = flags;
    let real = if last.is_empty() {
        first.to_string()
    } else {
        format!("{first} {last}")
    };
    let image = format!("https://example.com/avatars/{id}.png");
    let mut profile = json!({
        "title": title,
        "phone": "",
        "skype": "",
        "real_name": real,
        "real_name_normalized": real,
        "display_name": name,
        "display_name_normalized": name,
        "first_name": first,
        "last_name": last,
        "status_text": "",
        "status_emoji": "",
        "status_expiration": 0,
        "avatar_hash": format!("e{}", id.to_ascii_lowercase()),
        "image_24": image,
        "image_72": image,
        "image_192": image,
        "team": TEAM_ID,
    });
    if let Some(e) = email {
        profile["email"] = json!(e);
    }
    json!({
        "id": id,
        "team_id": TEAM_ID,
        "name": name,
        "deleted": deleted,
        "color": "9f69e7",
        "real_name": real,
        "tz": "Europe/Berlin",
        "tz_label": "Central European Time",
        "tz_offset": 3600,
        "profile": profile,
        "is_admin": admin,
        "is_owner": owner,
        "is_primary_owner": primary,
        "is_restricted": false,
        "is_ultra_restricted": false,
        "is_bot": false,
        "is_app_user": false,
        "updated": SEED_EPOCH,
        "is_email_confirmed": email.is_some(),
        "who_can_share_contact_card": "EVERYONE",
    })
}

impl Workspace {
    /// The deterministic seed: `humans` people (`U0000001`…, the first is the primary owner,
    /// the second an admin, the last one deleted), the bot user, Slackbot, 24 active public
    /// channels plus an archived one, a private channel, a DM between the bot and `U0000002`,
    /// and a group DM.
    pub fn seed(humans: usize, base_url: String, events: broadcast::Sender<Value>) -> Workspace {
        let humans = humans.max(4);
        let mut ws = Workspace {
            users: Vec::new(),
            user_idx: HashMap::new(),
            email_idx: HashMap::new(),
            channels: Vec::new(),
            chan_idx: HashMap::new(),
            name_idx: HashMap::new(),
            direct: HashMap::new(),
            files: HashMap::new(),
            invites: Vec::new(),
            scheduled: Vec::new(),
            next_id: 1,
            last_ts: 0,
            events,
            base_url,
        };
        let width = if humans >= 100 {
            humans.to_string().len()
        } else {
            2
        };
        for i in 1..=humans {
            let id = format!("U{i:07}");
            let name = format!("user{i:0width$}");
            let email = format!("{name}@example.com");
            let first = FIRST_NAMES[(i - 1) % FIRST_NAMES.len()];
            let last = LAST_NAMES[(i * 7 + (i - 1) / LAST_NAMES.len()) % LAST_NAMES.len()];
            let title = TITLES[i % TITLES.len()];
            let flags = (i <= 2, i == 1, i == 1, i == humans);
            let json = user_json(&id, &name, first, last, Some(&email), title, flags);
            ws.add_user(User {
                id,
                name,
                email: Some(email),
                deleted: i == humans,
                json,
            });
        }
        let mut bot = user_json(
            BOT_USER_ID,
            BOT_NAME,
            "Emulator Bot",
            "",
            None,
            "",
            (false, false, false, false),
        );
        bot["is_bot"] = json!(true);
        bot["profile"]["bot_id"] = json!(BOT_ID);
        bot["profile"]["api_app_id"] = json!(APP_ID);
        bot["profile"]["always_active"] = json!(true);
        ws.add_user(User {
            id: BOT_USER_ID.into(),
            name: BOT_NAME.into(),
            email: None,
            deleted: false,
            json: bot,
        });
        // Slack reports its own Slackbot with is_bot false; keep that quirk.
        let slackbot = user_json(
            SLACKBOT_ID,
            "slackbot",
            "Slackbot",
            "",
            None,
            "",
            (false, false, false, false),
        );
        ws.add_user(User {
            id: SLACKBOT_ID.into(),
            name: "slackbot".into(),
            email: None,
            deleted: false,
            json: slackbot,
        });

        let active: Vec<String> = (1..humans).map(|i| format!("U{i:07}")).collect();
        let everyone = || {
            let mut m: BTreeSet<String> = active.iter().cloned().collect();
            m.insert(BOT_USER_ID.into());
            m
        };
        ws.add_seed_channel("general", Kind::Public, everyone(), false);
        ws.add_seed_channel("random", Kind::Public, everyone(), false);
        let mut ops: BTreeSet<String> = active.iter().take(5).cloned().collect();
        ops.insert(BOT_USER_ID.into());
        ws.add_seed_channel("ops", Kind::Public, ops, false);
        for (n, name) in MORE_CHANNELS.iter().enumerate() {
            let mut members: BTreeSet<String> = active
                .iter()
                .enumerate()
                .filter(|(u, _)| *u == 0 || (u + n) % 3 == 0)
                .map(|(_, id)| id.clone())
                .collect();
            if matches!(*name, "engineering" | "incidents") {
                members.insert(BOT_USER_ID.into());
            }
            ws.add_seed_channel(name, Kind::Public, members, false);
        }
        let old: BTreeSet<String> = active.iter().take(3).cloned().collect();
        ws.add_seed_channel("old-project", Kind::Public, old, true);
        let mut leadership: BTreeSet<String> = active.iter().take(2).cloned().collect();
        leadership.insert(BOT_USER_ID.into());
        ws.add_seed_channel("leadership", Kind::Private, leadership, false);

        let dm = ws.open_direct(&[BOT_USER_ID.to_string(), "U0000002".to_string()]);
        let group = ws.open_direct(&[
            "U0000001".to_string(),
            "U0000002".to_string(),
            "U0000003".to_string(),
        ]);

        // A little history, dated in the past so live posts always sort after it.
        let seed: [(&str, &str, &str, Option<&str>); 6] = [
            (
                GENERAL_ID,
                "U0000001",
                "Welcome to the Emulator Workspace!",
                None,
            ),
            (
                GENERAL_ID,
                "U0000002",
                "Reminder: the weekly sync is on Thursday.",
                None,
            ),
            (
                GENERAL_ID,
                "U0000003",
                "Thanks, see you there.",
                Some("U0000002"),
            ),
            ("C0000002", "U0000003", "Has anyone seen my stapler?", None),
            (&dm, "U0000002", "Hello bot, are you there?", None),
            (&group, "U0000001", "Planning the offsite here.", None),
        ];
        let mut parent_ts = String::new();
        for (i, (channel, user, text, reply)) in seed.iter().enumerate() {
            let key = (SEED_EPOCH + 3600 * i as u64) * 1_000_000 + 100 * (i as u64 + 1);
            let msg = NewMessage {
                author: Author::User(user.to_string()),
                text: text.to_string(),
                extra: Map::new(),
                thread_ts: reply.map(|_| parent_ts.clone()),
                broadcast: false,
            };
            let idx = ws.chan_idx[*channel];
            let stored = ws.store_message(idx, msg, key, format_ts(key));
            if *channel == GENERAL_ID && reply.is_none() {
                parent_ts = stored["ts"].as_str().unwrap_or_default().to_string();
            }
        }
        ws
    }

    fn add_user(&mut self, u: User) {
        let i = self.users.len();
        self.user_idx.insert(u.id.clone(), i);
        if let Some(e) = &u.email {
            self.email_idx.insert(e.to_ascii_lowercase(), i);
        }
        self.users.push(u);
    }

    fn add_seed_channel(
        &mut self,
        name: &str,
        kind: Kind,
        members: BTreeSet<String>,
        archived: bool,
    ) -> String {
        let n = self.channels.len() as u64 + 1;
        let id = format!("C{n:07}");
        let purpose = match name {
            "general" => "This channel is for workspace-wide communication and announcements.",
            "random" => "A place for non-work banter.",
            _ => "",
        };
        let created = SEED_EPOCH - 86_400 * (100 - n.min(99));
        self.add_channel(Channel {
            id: id.clone(),
            name: name.into(),
            kind,
            created,
            creator: OWNER_ID.into(),
            archived,
            is_general: name == "general",
            topic: json!({"value": "", "creator": "", "last_set": 0}),
            purpose: json!({"value": purpose, "creator": OWNER_ID, "last_set": created}),
            members,
            messages: Vec::new(),
        });
        id
    }

    fn add_channel(&mut self, ch: Channel) -> usize {
        let i = self.channels.len();
        self.chan_idx.insert(ch.id.clone(), i);
        if matches!(ch.kind, Kind::Public | Kind::Private) {
            self.name_idx.insert(ch.name.clone(), i);
        }
        self.channels.push(ch);
        i
    }

    /// A fresh id with the given prefix, e.g. `C`, `F`, `D`.
    pub fn new_id(&mut self, prefix: &str) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("{prefix}0E{n:07}")
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.user_idx.get(id).map(|&i| &self.users[i])
    }

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.email_idx
            .get(&email.to_ascii_lowercase())
            .map(|&i| &self.users[i])
            .filter(|u| !u.deleted)
    }

    pub fn channel_index(&self, id: &str) -> Option<usize> {
        self.chan_idx.get(id).copied()
    }

    pub fn channel_by_name(&self, name: &str) -> Option<usize> {
        self.name_idx.get(name).copied()
    }

    /// The DM or group DM between exactly `members`, created on first use.
    pub fn open_direct(&mut self, members: &[String]) -> String {
        let mut sorted: Vec<&str> = members.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let key = sorted.join(",");
        if let Some(id) = self.direct.get(&key) {
            return id.clone();
        }
        let (kind, id, name) = if sorted.len() <= 2 {
            (
                Kind::Im,
                format!("D{:07}", self.direct.len() + 1),
                String::new(),
            )
        } else {
            let names: Vec<String> = sorted
                .iter()
                .map(|u| self.user(u).map_or(u.to_string(), |u| u.name.clone()))
                .collect();
            (
                Kind::Mpim,
                format!("G{:07}", self.direct.len() + 1),
                format!("mpdm-{}-1", names.join("--")),
            )
        };
        self.add_channel(Channel {
            id: id.clone(),
            name,
            kind,
            created: SEED_EPOCH,
            creator: sorted.first().map(|s| s.to_string()).unwrap_or_default(),
            archived: false,
            is_general: false,
            topic: json!({"value": "", "creator": "", "last_set": 0}),
            purpose: json!({"value": "", "creator": "", "last_set": 0}),
            members: sorted.iter().map(|s| s.to_string()).collect(),
            messages: Vec::new(),
        });
        self.direct.insert(key, id.clone());
        id
    }

    /// Whether an existing DM/MPIM with exactly these members exists.
    pub fn has_direct(&self, members: &[String]) -> bool {
        let mut sorted: Vec<&str> = members.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        self.direct.contains_key(&sorted.join(","))
    }

    /// Creates a channel (`conversations.create`) and returns its index.
    pub fn create_channel(&mut self, name: &str, private: bool, creator: &str) -> usize {
        let id = self.new_id("C");
        let created = now_secs();
        let mut members = BTreeSet::new();
        members.insert(creator.to_string());
        self.add_channel(Channel {
            id,
            name: name.into(),
            kind: if private { Kind::Private } else { Kind::Public },
            created,
            creator: creator.into(),
            archived: false,
            is_general: false,
            topic: json!({"value": "", "creator": "", "last_set": 0}),
            purpose: json!({"value": "", "creator": "", "last_set": 0}),
            members,
            messages: Vec::new(),
        })
    }

    /// A new, unique, increasing ts: the wall clock in microseconds, bumped by one when two
    /// messages land in the same microsecond (or the clock steps back).
    pub fn next_ts(&mut self) -> (u64, String) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let key = now.max(self.last_ts + 1);
        self.last_ts = key;
        (key, format_ts(key))
    }

    /// Announces an event about channel `idx` that stores nothing (edits, deletions).
    pub fn announce(&self, idx: usize, mut event: Value) {
        let ch = &self.channels[idx];
        event["channel"] = json!(ch.id);
        event["channel_type"] = json!(ch.kind.event_name());
        let _ = self.events.send(event);
    }

    /// Makes the next `count` timestamps share one second (for same-second tests): when they
    /// would straddle a second boundary, the clock moves to the start of the next second.
    pub fn same_second(&mut self, count: u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let base = now.max(self.last_ts + 1);
        let last = base + count.saturating_sub(1);
        if base / 1_000_000 != last / 1_000_000 {
            self.last_ts = (base / 1_000_000 + 1) * 1_000_000 - 1;
        }
    }

    /// The one way a message enters the workspace: stores it in channel `idx`, wires up the
    /// thread it replies to, announces it to subscribers, and returns the stored message.
    pub fn post_message(&mut self, idx: usize, msg: NewMessage) -> Value {
        let (key, ts) = self.next_ts();
        self.store_message(idx, msg, key, ts)
    }

    /// [`Workspace::post_message`] with a given ts (from [`Workspace::next_ts`], or the seed's).
    pub(crate) fn store_message(
        &mut self,
        idx: usize,
        msg: NewMessage,
        key: u64,
        ts: String,
    ) -> Value {
        let mut data = Map::new();
        data.insert("type".into(), json!("message"));
        let mut author_id = None;
        match &msg.author {
            Author::User(u) => {
                data.insert("user".into(), json!(u));
                author_id = Some(u.clone());
            }
            Author::Bot { user, username } => {
                if user.is_none() {
                    // How Slack stores incoming-webhook posts: no user, only the bot.
                    data.insert("subtype".into(), json!("bot_message"));
                }
                if let Some(u) = user {
                    data.insert("user".into(), json!(u));
                    author_id = Some(u.clone());
                }
                data.insert("bot_id".into(), json!(BOT_ID));
                data.insert("app_id".into(), json!(APP_ID));
                if let Some(name) = username {
                    data.insert("username".into(), json!(name));
                }
            }
        }
        data.insert("text".into(), json!(msg.text));
        data.insert("ts".into(), json!(ts));
        data.insert("team".into(), json!(TEAM_ID));
        for (k, v) in msg.extra {
            data.insert(k, v);
        }
        if matches!(msg.author, Author::Bot { .. }) {
            data.insert(
                "bot_profile".into(),
                json!({"id": BOT_ID, "app_id": APP_ID, "name": BOT_NAME, "deleted": false, "team_id": TEAM_ID}),
            );
        }

        let ch = &mut self.channels[idx];
        if let Some(parent_ts) = &msg.thread_ts
            && let Some(p) = ch.find(parent_ts)
        {
            // A reply to a reply joins the same thread.
            let root_ts = ch.messages[p]
                .thread_ts()
                .unwrap_or(parent_ts.as_str())
                .to_string();
            if let Some(r) = ch.find(&root_ts) {
                let root = &mut ch.messages[r].data;
                let replier = author_id.clone().unwrap_or_else(|| BOT_ID.to_string());
                let count = root.get("reply_count").and_then(Value::as_u64).unwrap_or(0) + 1;
                let mut users: Vec<Value> = root
                    .get("reply_users")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !users.iter().any(|u| u == &json!(replier)) {
                    users.push(json!(replier));
                }
                let parent_user = root.get("user").cloned().unwrap_or(Value::Null);
                root.insert("thread_ts".into(), json!(root_ts));
                root.insert("reply_count".into(), json!(count));
                root.insert("reply_users_count".into(), json!(users.len()));
                root.insert("reply_users".into(), Value::Array(users));
                root.insert("latest_reply".into(), json!(ts));
                data.insert("thread_ts".into(), json!(root_ts));
                data.insert("parent_user_id".into(), parent_user);
                if msg.broadcast {
                    data.insert("subtype".into(), json!("thread_broadcast"));
                }
            }
        }
        let stored = Value::Object(data.clone());
        ch.messages.push(Message {
            key,
            ts: ts.clone(),
            data,
        });
        let mut event = stored.clone();
        event["channel"] = json!(ch.id);
        event["channel_type"] = json!(ch.kind.event_name());
        event["event_ts"] = json!(ts);
        // Events that follow from this message (an app_mention), after it as on Slack.
        let follow = super::slack_events::after_message(&event);
        // Nobody listening is fine: the send only fails when there are no receivers.
        let _ = self.events.send(event);
        if let Some(e) = follow {
            let _ = self.events.send(e);
        }
        stored
    }

    /// Announces an event that is not about one stored message (reactions, joins); it must
    /// carry its own `event_ts`.
    pub fn emit(&self, event: Value) {
        let _ = self.events.send(event);
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
