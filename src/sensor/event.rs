//! Received frames read as typed structs that borrow from the frame's text: only the fields
//! the sensor uses are decoded, strings without escapes are not copied, and nested objects
//! (`message`, `attachments`, `blocks`, …) are kept as raw JSON text until needed. This is
//! the sensor's hot path; building a generic JSON tree per event cost several times more.
//!
//! Every field is read leniently: a field of an unexpected JSON type (other event types put
//! objects where messages have strings, e.g. `user` in `user_change`) reads as absent rather
//! than failing the whole frame.

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Reads one of this module's structs from a frame's text. Only a JSON object is accepted:
/// serde would otherwise read an array positionally into the struct's fields.
pub fn read<'a, T: Deserialize<'a>>(text: &'a str) -> serde_json::Result<T> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
    } else {
        Err(serde::de::Error::custom("expected a JSON object"))
    }
}

/// A string field: `Some` when the JSON value is a string, `None` for anything else.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            // Objects, and numbers (which exact-number parsing hands over as a one-entry map).
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A whole number field (`retry_attempt`), read leniently like [`Text`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Numbers arrive exactly (as their text), so go through a JSON value of one number.
        let v = serde_json::Value::deserialize(d)?;
        Ok(Count(v.as_u64().unwrap_or(0)))
    }
}

/// A nested JSON value kept as its text (`attachments`, `blocks`, nested messages).
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub &'a RawValue);

impl<'a> Raw<'a> {
    pub fn text(&self) -> &'a str {
        self.0.get()
    }

    fn is_object(&self) -> bool {
        self.text().starts_with('{')
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(Raw)
    }
}

impl Serialize for Raw<'_> {
    /// Copied through as it came, except that a value spread over several lines (the frame
    /// was pretty-printed) is written compactly: a trigger must stay on one line.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.text().contains(['\n', '\r']) {
            let v: serde_json::Value =
                serde_json::from_str(self.text()).map_err(serde::ser::Error::custom)?;
            v.serialize(s)
        } else {
            self.0.serialize(s)
        }
    }
}

/// The fields of an event (or of a message nested in one) that the sensor reads.
#[derive(Debug, Default, Deserialize)]
pub struct Event<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub subtype: Text<'a>,
    #[serde(borrow, default)]
    pub channel: Text<'a>,
    #[serde(borrow, default)]
    pub channel_type: Text<'a>,
    #[serde(borrow, default)]
    pub user: Text<'a>,
    #[serde(borrow, default)]
    pub text: Text<'a>,
    #[serde(borrow, default)]
    pub ts: Text<'a>,
    #[serde(borrow, default)]
    pub event_ts: Text<'a>,
    #[serde(borrow, default)]
    pub deleted_ts: Text<'a>,
    #[serde(borrow, default)]
    pub thread_ts: Text<'a>,
    #[serde(borrow, default)]
    pub team: Text<'a>,
    #[serde(borrow, default)]
    pub bot_id: Text<'a>,
    #[serde(borrow, default)]
    pub username: Text<'a>,
    #[serde(borrow, default)]
    pub bot_profile: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub attachments: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub blocks: Option<Raw<'a>>,
    /// The new version of an edited message (`message_changed`).
    #[serde(borrow, default)]
    pub message: Option<Raw<'a>>,
    /// The old version of an edited or deleted message.
    #[serde(borrow, default)]
    pub previous_message: Option<Raw<'a>>,
}

impl<'a> Event<'a> {
    pub fn parse(text: &'a str) -> serde_json::Result<Event<'a>> {
        read(text)
    }

    /// A nested message, when it is an object that reads as one.
    pub fn nested(raw: Option<Raw<'a>>) -> Option<Event<'a>> {
        raw.filter(Raw::is_object)
            .and_then(|r| Event::parse(r.text()).ok())
    }

    /// `bot_profile.name`, read only when needed (bot messages without a user).
    pub fn bot_name(&self) -> Option<Cow<'a, str>> {
        #[derive(Deserialize)]
        struct Profile<'a> {
            #[serde(borrow, default)]
            name: Text<'a>,
        }
        let raw = self.bot_profile.filter(Raw::is_object)?;
        read::<Profile<'a>>(raw.text()).ok().and_then(|p| p.name.0)
    }
}

/// The Events API wrapper (`event_callback`), on its own (HTTP) or inside a Socket Mode
/// envelope. The event is `E`: decoded in the same pass ([`Event`]) or kept as text ([`Raw`]).
#[derive(Debug, Default, Deserialize)]
pub struct Callback<'a, E = Raw<'a>> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub event_id: Text<'a>,
    #[serde(borrow, default)]
    pub team_id: Text<'a>,
    #[serde(default = "none")]
    pub event: Option<E>,
    /// `url_verification`'s challenge.
    #[serde(borrow, default)]
    pub challenge: Text<'a>,
    /// `app_rate_limited`'s minute.
    #[serde(borrow, default)]
    pub minute_rate_limited: Option<Raw<'a>>,
}

fn none<T>() -> Option<T> {
    None
}

/// A Socket Mode frame: an envelope (`events_api`, `slash_commands`, …) or a control frame
/// (`hello`, `disconnect`). `P` is the payload: decoded in the same pass (an events_api
/// envelope's [`Callback`] with its [`Event`], the fast path) or kept as text ([`Raw`]).
#[derive(Debug, Default, Deserialize)]
pub struct Frame<'a, P = Raw<'a>> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub envelope_id: Text<'a>,
    #[serde(default)]
    pub retry_attempt: Count,
    /// `disconnect`'s reason.
    #[serde(borrow, default)]
    pub reason: Text<'a>,
    #[serde(default = "none")]
    pub payload: Option<P>,
}

impl<'a, P> Frame<'a, P> {
    /// The same frame with no payload (of any type): for an envelope whose payload did not read.
    pub fn without_payload<Q>(self) -> Frame<'a, Q> {
        Frame {
            kind: self.kind,
            envelope_id: self.envelope_id,
            retry_attempt: self.retry_attempt,
            reason: self.reason,
            payload: None,
        }
    }
}

/// Whether `text` is a frame of type `kind` (its payload is skipped, not decoded).
pub fn is_frame(text: &str, kind: &str) -> bool {
    read::<Frame>(text).is_ok_and(|f| f.kind.get() == Some(kind))
}

/// An `events_api` envelope read in one pass, event included.
pub type EventEnvelope<'a> = Frame<'a, Callback<'a, Event<'a>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped_and_odd_types_read_as_absent() {
        let text = r#"{"type":"message","text":"a\nb","user":{"id":"U1"},"ts":17,
            "channel":"C1","team":null,"bot_id":[1,2],"blocks":[{"type":"divider"}]}"#;
        let e = Event::parse(text).unwrap();
        assert!(matches!(e.kind.0, Some(Cow::Borrowed("message"))));
        assert!(matches!(e.text.0, Some(Cow::Owned(ref s)) if s == "a\nb"));
        assert_eq!(e.user.get(), None);
        assert_eq!(e.ts.get(), None, "a number is not a ts");
        assert_eq!(e.team.get(), None);
        assert_eq!(e.bot_id.get(), None);
        assert_eq!(e.blocks.unwrap().text(), r#"[{"type":"divider"}]"#);
        assert!(Event::parse("[1]").is_err());
        assert!(read::<Frame>(r#"["hello"]"#).is_err());
        assert!(read::<Frame>(" {}").is_ok());
        assert!(is_frame(r#"{"type":"pong","reply_to":1}"#, "pong"));
        assert!(!is_frame(r#"{"type":"message","text":"pong"}"#, "pong"));
    }

    #[test]
    fn nested_messages_and_bot_names() {
        let text = r#"{"type":"message","subtype":"message_changed","message":{"text":"new",
            "bot_profile":{"name":"deploy\u0062ot"}},"previous_message":"odd"}"#;
        let e = Event::parse(text).unwrap();
        let m = Event::nested(e.message).unwrap();
        assert_eq!(m.text.get(), Some("new"));
        assert_eq!(m.bot_name().as_deref(), Some("deploybot"));
        assert!(Event::nested(e.previous_message).is_none());
    }

    #[test]
    fn envelopes_and_retry_counts() {
        let text = r#"{"envelope_id":"e1","type":"events_api","retry_attempt":2,
            "payload":{"type":"event_callback","event_id":"Ev1","team_id":"T1",
                       "event":{"type":"message","channel":"C1","ts":"1.2"}}}"#;
        let one: EventEnvelope = serde_json::from_str(text).unwrap();
        let event = one.payload.unwrap().event.unwrap();
        assert_eq!(event.channel.get(), Some("C1"));
        assert!(matches!(event.ts.0, Some(Cow::Borrowed("1.2"))));
        let f: Frame = serde_json::from_str(text).unwrap();
        assert_eq!(f.retry_attempt, Count(2));
        let cb: Callback = serde_json::from_str(f.payload.unwrap().text()).unwrap();
        assert_eq!(cb.event_id.get(), Some("Ev1"));
        let e = Event::parse(cb.event.unwrap().text()).unwrap();
        assert_eq!(e.channel.get(), Some("C1"));
        let odd: Frame = serde_json::from_str(r#"{"type":"hello","retry_attempt":"x"}"#).unwrap();
        assert_eq!(odd.retry_attempt, Count(0));
    }

    #[test]
    fn multi_line_raw_values_are_written_on_one_line() {
        let text = "{\"blocks\": [\n  {\"type\": \"divider\"}\n]}";
        let e = Event::parse(text).unwrap();
        let out = serde_json::to_string(&e.blocks.unwrap()).unwrap();
        assert_eq!(out, r#"[{"type":"divider"}]"#);
        let e = Event::parse(r#"{"blocks":[ {"type":"x"} ]}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&e.blocks.unwrap()).unwrap(),
            r#"[ {"type":"x"} ]"#,
            "single-line values pass through untouched"
        );
    }
}
