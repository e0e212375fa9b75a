//! Plain-text mentions to Slack markup: `@jane.doe` → `<@U…>`, `#ops` → `<#C…>`,
//! `@here`/`@channel`/`@everyone` → `<!here>`/`<!channel>`/`<!everyone>`.
//!
//! Slack only links names it is given as IDs (`link_names` is legacy and unreliable), so the
//! conversion happens here, conservatively:
//!
//! * only at the start of a word (after optional opening punctuation such as `(` or `*`), so
//!   e-mail addresses (`jane@example.com`) and `@hereafter` are left alone;
//! * never inside URLs (`https://x/#top`, `www.x/@me`, `mailto:`), existing `<…>` markup, or
//!   code (`` `…` `` spans and ```` ``` ```` blocks);
//! * names may contain dots, dashes and underscores (`@jane.doe`); trailing punctuation is
//!   tried off (`@jane.doe.` at the end of a sentence still links `jane.doe`);
//! * unknown names stay as typed.

use super::directory::Directory;
use crate::error::Result;
use serde_json::{Map, Value};

/// What a candidate names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sigil {
    /// `@name`: a user.
    User,
    /// `#name`: a channel.
    Channel,
}

/// Characters that may open a word before a mention: brackets, quotes, mrkdwn styling.
const OPENERS: &[char] = &['(', '[', '{', '"', '\'', '*', '_', '~'];
/// Broadcast mentions, which need no lookup.
const SPECIALS: &[&str] = &["here", "channel", "everyone"];

fn is_name_char(sigil: Sigil, c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || (sigil == Sigil::User && c == '.')
}

fn is_url(word: &str) -> bool {
    let w = word.trim_start_matches(OPENERS);
    let lower = w.to_ascii_lowercase();
    word.contains("://") || lower.starts_with("www.") || lower.starts_with("mailto:")
}

/// The converted text, and the candidates that named nobody (left as typed).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Linked {
    pub text: String,
    pub unknown: Vec<(Sigil, String)>,
}

/// Rewrites the mentions in `text`. `resolve` maps a user or channel name to its ID (or
/// `None` to leave it as typed); broadcasts are handled here.
pub fn link_mentions(text: &str, resolve: &mut dyn FnMut(Sigil, &str) -> Option<String>) -> Linked {
    let mut out = Linked {
        text: String::with_capacity(text.len() + 16),
        unknown: Vec::new(),
    };
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        // Code blocks and spans, and existing markup, are copied verbatim when closed.
        if let Some(after) = rest.strip_prefix("```") {
            match after.find("```") {
                Some(end) => {
                    let n = 3 + end + 3;
                    out.text.push_str(&rest[..n]);
                    i += n;
                }
                None => {
                    out.text.push_str("```");
                    i += 3;
                }
            }
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c == '`' || c == '<' {
            let close = if c == '`' { '`' } else { '>' };
            match rest[1..].find(close) {
                Some(end) => {
                    out.text.push_str(&rest[..end + 2]);
                    i += end + 2;
                }
                None => {
                    out.text.push(c);
                    i += 1;
                }
            }
            continue;
        }
        if c.is_whitespace() {
            out.text.push(c);
            i += c.len_utf8();
            continue;
        }
        let len = rest
            .find(|ch: char| ch.is_whitespace() || ch == '`' || ch == '<')
            .unwrap_or(rest.len());
        let word = &rest[..len];
        if is_url(word) {
            out.text.push_str(word);
        } else {
            link_word(word, &mut out, resolve);
        }
        i += len;
    }
    out
}

/// Links the mentions of one whitespace-delimited word: one at its start, and further ones
/// after a comma (`@ann,@bob`).
fn link_word(
    word: &str,
    linked_out: &mut Linked,
    resolve: &mut dyn FnMut(Sigil, &str) -> Option<String>,
) {
    let out = &mut linked_out.text;
    let mut rest = word;
    loop {
        let opened = rest.trim_start_matches(OPENERS);
        out.push_str(&rest[..rest.len() - opened.len()]);
        rest = opened;
        let sigil = match rest.chars().next() {
            Some('@') => Sigil::User,
            Some('#') => Sigil::Channel,
            _ => break,
        };
        let body = &rest[1..];
        let full = body
            .find(|c: char| !is_name_char(sigil, c))
            .unwrap_or(body.len());
        // `@ann@example.com` is an address, not a mention.
        let email_like = body[full..].starts_with('@');
        let mut linked = None;
        if full > 0 && !email_like {
            // Longest name first, then without trailing punctuation.
            let mut n = full;
            while n > 0 {
                let name = &body[..n];
                let markup = match sigil {
                    Sigil::User if SPECIALS.contains(&name) => Some(format!("<!{name}>")),
                    Sigil::User => resolve(sigil, name).map(|id| format!("<@{id}>")),
                    Sigil::Channel => resolve(sigil, name).map(|id| format!("<#{id}>")),
                };
                if let Some(m) = markup {
                    linked = Some((m, n));
                    break;
                }
                match name.chars().last() {
                    Some(ch) if matches!(ch, '.' | '-' | '_') => n -= ch.len_utf8(),
                    _ => break,
                }
            }
        }
        match linked {
            Some((markup, n)) => {
                out.push_str(&markup);
                rest = &body[n..];
            }
            None => {
                let name = body[..full].trim_end_matches(['.', '-', '_']);
                if !name.is_empty() && !email_like {
                    linked_out.unknown.push((sigil, name.to_string()));
                }
                let skip = 1 + full;
                out.push_str(&rest[..skip]);
                rest = &rest[skip..];
            }
        }
        match rest.strip_prefix(',') {
            Some(after) if after.starts_with(['@', '#']) => {
                out.push(',');
                rest = after;
            }
            _ => break,
        }
    }
    out.push_str(rest);
}

/// Which directories the text needs: (users, channels).
pub fn needs(text: &str) -> (bool, bool) {
    let (mut users, mut channels) = (false, false);
    link_mentions(text, &mut |sigil, _| {
        match sigil {
            Sigil::User => users = true,
            Sigil::Channel => channels = true,
        }
        None
    });
    (users, channels)
}

/// Links the mentions in `text`, loading only the directories the text needs. Unknown
/// names are left as typed, with a warning.
pub async fn link(dir: &mut Directory<'_>, text: &str) -> Result<String> {
    let (want_users, want_channels) = needs(text);
    if want_users {
        dir.users().await?;
    }
    if want_channels {
        dir.channels().await?;
    }
    let (users, channels) = dir.loaded();
    let linked = link_mentions(text, &mut |sigil, name| {
        match sigil {
            Sigil::User => users.and_then(|u| u.get(name)),
            Sigil::Channel => channels.and_then(|c| c.id(name)),
        }
        .map(String::from)
    });
    // `#123` is usually an issue number, not a channel: only name-like misses are reported.
    let missed: Vec<String> = linked
        .unknown
        .iter()
        .filter(|(s, n)| *s == Sigil::User || n.chars().any(char::is_alphabetic))
        .map(|(s, n)| format!("{}{n}", if *s == Sigil::User { '@' } else { '#' }))
        .collect();
    if !missed.is_empty() {
        crate::log::warn(&format!(
            "left as typed (no such user or visible channel): {}",
            missed.join(", ")
        ));
    }
    Ok(linked.text)
}

/// Whether `--link-mentions` makes sense for a generic action: the message-sending `chat.*`
/// methods that take `text`.
pub fn applies_to(action: &crate::catalog::Action) -> bool {
    action.is_generic() && action.name.starts_with("chat.") && action.param("text").is_some()
}

/// Links `text` in an action's parameters, when present.
pub async fn link_params(dir: &mut Directory<'_>, params: &mut Map<String, Value>) -> Result<()> {
    if let Some(Value::String(t)) = params.get("text") {
        let linked = link(dir, t).await?;
        params.insert("text".into(), Value::String(linked));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Links with a fixed directory: users ann, jane.doe, bob_s, ünal; channels ops, dev-null.
    fn link(text: &str) -> String {
        linked(text).text
    }

    fn linked(text: &str) -> Linked {
        link_mentions(text, &mut |sigil, name| {
            let id = match (sigil, name.to_lowercase().as_str()) {
                (Sigil::User, "ann") => "U1",
                (Sigil::User, "jane.doe") => "U2",
                (Sigil::User, "bob_s") => "U3",
                (Sigil::User, "ünal") => "U4",
                (Sigil::Channel, "ops") => "C1",
                (Sigil::Channel, "dev-null") => "C2",
                _ => return None,
            };
            Some(id.to_string())
        })
    }

    #[test]
    fn users_channels_and_broadcasts() {
        assert_eq!(link("hi @ann"), "hi <@U1>");
        assert_eq!(link("@ann see #ops"), "<@U1> see <#C1>");
        assert_eq!(
            link("@here @channel @everyone"),
            "<!here> <!channel> <!everyone>"
        );
        assert_eq!(link("#dev-null"), "<#C2>");
        assert_eq!(link("@ünal"), "<@U4>");
        assert_eq!(link("@ANN"), "<@U1>");
        assert_eq!(
            link("line1\n@ann\tand\r\n#ops"),
            "line1\n<@U1>\tand\r\n<#C1>"
        );
    }

    #[test]
    fn names_with_dots_and_trailing_punctuation() {
        assert_eq!(link("ping @jane.doe"), "ping <@U2>");
        assert_eq!(link("ping @jane.doe."), "ping <@U2>.");
        assert_eq!(link("ping @jane.doe..."), "ping <@U2>...");
        assert_eq!(link("@ann, @bob_s: look"), "<@U1>, <@U3>: look");
        assert_eq!(link("(@ann)"), "(<@U1>)");
        assert_eq!(link("*@here*"), "*<!here>*");
        assert_eq!(link("_#ops_"), "_<#C1>_");
        assert_eq!(link("\"@ann\""), "\"<@U1>\"");
        assert_eq!(link("@ann's idea"), "<@U1>'s idea");
        assert_eq!(link("@here!"), "<!here>!");
        assert_eq!(link("@here."), "<!here>.");
        assert_eq!(link("#ops?"), "<#C1>?");
        assert_eq!(link("@ann,@jane.doe"), "<@U1>,<@U2>");
    }

    #[test]
    fn only_at_word_boundaries() {
        assert_eq!(link("@hereafter"), "@hereafter");
        assert_eq!(link("@channels"), "@channels");
        assert_eq!(link("@annie"), "@annie");
        assert_eq!(link("x@ann"), "x@ann");
        assert_eq!(link("a#ops"), "a#ops");
        assert_eq!(link("C#"), "C#");
        assert_eq!(link("@ @ # #"), "@ @ # #");
        assert_eq!(link("@"), "@");
        assert_eq!(link("issue #12"), "issue #12");
    }

    #[test]
    fn never_inside_emails_urls_markup_or_code() {
        assert_eq!(link("mail ann@example.com"), "mail ann@example.com");
        assert_eq!(link("mail @ann@example.com"), "mail @ann@example.com");
        assert_eq!(
            link("see https://example.com/#ops and http://x.io/@ann"),
            "see https://example.com/#ops and http://x.io/@ann"
        );
        assert_eq!(link("www.example.com/@ann"), "www.example.com/@ann");
        assert_eq!(link("(https://x.io/#ops)"), "(https://x.io/#ops)");
        assert_eq!(link("mailto:@ann"), "mailto:@ann");
        assert_eq!(link("example.com/#ops"), "example.com/#ops");
        assert_eq!(
            link("<https://x.io|@ann> <@U9> <#C9|ops>"),
            "<https://x.io|@ann> <@U9> <#C9|ops>"
        );
        assert_eq!(
            link("run `@ann #ops` now @ann"),
            "run `@ann #ops` now <@U1>"
        );
        assert_eq!(
            link("```\n@here #ops\n``` @here"),
            "```\n@here #ops\n``` <!here>"
        );
        assert_eq!(link("a`@ann` b"), "a`@ann` b");
    }

    #[test]
    fn unclosed_code_and_markup_are_literal() {
        assert_eq!(link("it's ` @ann"), "it's ` <@U1>");
        assert_eq!(link("``` @ann"), "``` <@U1>");
        assert_eq!(link("5 < 6 @ann"), "5 < 6 <@U1>");
        assert_eq!(link(""), "");
    }

    #[test]
    fn unknown_names_stay_and_are_reported() {
        let l = linked("hi @nobody and #secret, @jane.doe. #42");
        assert_eq!(l.text, "hi @nobody and #secret, <@U2>. #42");
        assert_eq!(
            l.unknown,
            vec![
                (Sigil::User, "nobody".to_string()),
                (Sigil::Channel, "secret".to_string()),
                (Sigil::Channel, "42".to_string()),
            ]
        );
    }

    #[test]
    fn needs_only_what_the_text_names() {
        assert_eq!(needs("@here, all"), (false, false));
        assert_eq!(needs("@ann"), (true, false));
        assert_eq!(needs("#ops `@ann`"), (false, true));
        assert_eq!(needs("x@y.z https://a/#b"), (false, false));
    }
}
