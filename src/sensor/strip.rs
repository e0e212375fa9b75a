//! "Strip formatting": Slack's received markup turned into the plain text a person sees,
//! following slack-platform.md §8.3 step by step. Pure: names come from a [`Names`] lookup
//! that the caller fills beforehand (see [`mentions`] for what to look up).

/// Resolves ids to display names. Every method may answer `None` (unknown id).
pub trait Names {
    fn user(&self, id: &str) -> Option<String>;
    fn channel(&self, id: &str) -> Option<String>;
    fn subteam(&self, id: &str) -> Option<String>;
}

/// A lookup that knows nothing: every mention falls back to its label or id.
pub struct NoNames;

impl Names for NoNames {
    fn user(&self, _: &str) -> Option<String> {
        None
    }
    fn channel(&self, _: &str) -> Option<String> {
        None
    }
    fn subteam(&self, _: &str) -> Option<String> {
        None
    }
}

/// The user and conversation ids that [`strip`] would like names for: mentions without a
/// label. Lets the caller warm its caches before the (synchronous) strip runs.
pub fn mentions(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut users, mut channels) = (Vec::new(), Vec::new());
    for inner in sequences(text).into_iter().filter_map(|s| s.inner) {
        let (target, label) = split_label(inner);
        if label.is_some() {
            continue;
        }
        if let Some(id) = user_target(target) {
            if !users.iter().any(|u| u == id) {
                users.push(id.to_string());
            }
        } else if let Some(id) = channel_target(target)
            && !channels.iter().any(|c| c == id)
        {
            channels.push(id.to_string());
        }
    }
    (users, channels)
}

/// Applies §8.3 to a received `text`.
pub fn strip(text: &str, names: &dyn Names) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in sequences(text) {
        match piece.inner {
            None => out.push_str(piece.raw),
            Some(inner) => out.push_str(&replace(inner, names)),
        }
    }
    unescape(&out)
}

/// One piece of the text: either plain (`inner` is `None`) or a whole `<…>` sequence.
struct Piece<'a> {
    raw: &'a str,
    inner: Option<&'a str>,
}

/// Step 1: split the text into plain runs and `<…>` sequences, each sequence being the
/// shortest span from a `<` to the next `>`. A `<` without a closing `>` stays as it is.
fn sequences(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            break;
        };
        if open > 0 {
            pieces.push(Piece {
                raw: &rest[..open],
                inner: None,
            });
        }
        pieces.push(Piece {
            raw: &rest[open..open + close + 2],
            inner: Some(&after[..close]),
        });
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece {
            raw: rest,
            inner: None,
        });
    }
    pieces
}

/// Step 2: target and optional label, split at the first `|`.
fn split_label(inner: &str) -> (&str, Option<&str>) {
    match inner.split_once('|') {
        Some((t, l)) => (t, Some(l)),
        None => (inner, None),
    }
}

fn user_target(target: &str) -> Option<&str> {
    target
        .strip_prefix('@')
        .filter(|id| id.starts_with('U') || id.starts_with('W'))
}

fn channel_target(target: &str) -> Option<&str> {
    target
        .strip_prefix('#')
        .filter(|id| id.starts_with('C') || id.starts_with('G') || id.starts_with('D'))
}

/// Step 3: the replacement of one sequence.
fn replace(inner: &str, names: &dyn Names) -> String {
    let (target, label) = split_label(inner);
    if let Some(id) = user_target(target) {
        let name = label
            .map(str::to_string)
            .or_else(|| names.user(id))
            .unwrap_or_else(|| id.to_string());
        return format!("@{name}");
    }
    if let Some(id) = channel_target(target) {
        let name = label
            .map(str::to_string)
            .or_else(|| names.channel(id))
            .unwrap_or_else(|| id.to_string());
        return format!("#{name}");
    }
    if let Some(command) = target.strip_prefix('!') {
        return match command {
            "here" | "channel" | "everyone" => format!("@{command}"),
            "group" => "@channel".to_string(),
            _ if command.starts_with("subteam^") => {
                let id = &command["subteam^".len()..];
                match label {
                    Some(l) => l.to_string(),
                    None => names
                        .subteam(id)
                        .map(|h| format!("@{h}"))
                        .unwrap_or_else(|| id.to_string()),
                }
            }
            _ if command.starts_with("date^") => label.unwrap_or(target).to_string(),
            _ => match label {
                Some(l) => l.to_string(),
                // "other !word…": the word itself, i.e. the command up to any `^` argument.
                None => command.split('^').next().unwrap_or(command).to_string(),
            },
        };
    }
    match label {
        Some(l) if !l.is_empty() => l.to_string(),
        _ => target.strip_prefix("mailto:").unwrap_or(target).to_string(),
    }
}

/// Step 4: `&lt;` and `&gt;` first, `&amp;` last, so `&amp;lt;` becomes `&lt;`, not `<`.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Known;
    impl Names for Known {
        fn user(&self, id: &str) -> Option<String> {
            (id == "U42").then(|| "ada".to_string())
        }
        fn channel(&self, id: &str) -> Option<String> {
            (id == "C42").then(|| "ops".to_string())
        }
        fn subteam(&self, id: &str) -> Option<String> {
            (id == "S42").then(|| "oncall".to_string())
        }
    }

    #[test]
    fn the_documented_examples() {
        let n = &NoNames;
        assert_eq!(
            strip(
                "hello <https://a.example|docs> and <https://b.example|more>",
                n
            ),
            "hello docs and more"
        );
        assert_eq!(strip("<@U1|bob> see <#C1|ops>", n), "@bob see #ops");
        assert_eq!(strip("<!here> 5 &lt; 6", n), "@here 5 < 6");
        assert_eq!(strip("<mailto:a@b.c>", n), "a@b.c");
    }

    #[test]
    fn mentions_use_label_then_lookup_then_id() {
        assert_eq!(strip("<@U42> <@W9> <@U42|x>", &Known), "@ada @W9 @x");
        assert_eq!(strip("<#C42> <#G7> <#D1|dm>", &Known), "#ops #G7 #dm");
        assert_eq!(mentions("<@U42> <#C42> <@U42> <@U9|n> <#C1|x>").0, ["U42"]);
        assert_eq!(mentions("<@U42> <#C42>").1, ["C42"]);
    }

    #[test]
    fn specials() {
        let n = &Known;
        assert_eq!(
            strip("<!channel> <!everyone|x> <!group>", n),
            "@channel @everyone @channel"
        );
        assert_eq!(strip("<!subteam^S42|@team>", n), "@team");
        assert_eq!(strip("<!subteam^S42>", n), "@oncall");
        assert_eq!(strip("<!subteam^S9>", n), "S9");
        assert_eq!(
            strip("<!date^1700000000^{date_short}|Nov 14, 2023>", n),
            "Nov 14, 2023"
        );
        assert_eq!(
            strip("<!date^1700000000^{date}>", n),
            "!date^1700000000^{date}"
        );
        assert_eq!(strip("<!foo^bar> <!foo|shown>", n), "foo shown");
    }

    #[test]
    fn links_and_edge_cases() {
        let n = &NoNames;
        assert_eq!(strip("<https://x.example>", n), "https://x.example");
        assert_eq!(strip("<https://x.example|>", n), "https://x.example");
        assert_eq!(strip("<mailto:a@b.c|write me>", n), "write me");
        assert_eq!(strip("<tel:+123|call>", n), "call");
        // The first `|` splits; later ones belong to the label.
        assert_eq!(strip("<https://x|a|b>", n), "a|b");
        // No closing `>`: the rest stays as is (then unescaped).
        assert_eq!(strip("a <b c &amp; d", n), "a <b c & d");
        // Shortest span: two sequences never merge.
        assert_eq!(strip("<http://a|A> mid <http://b|B>", n), "A mid B");
        // `&amp;` last: a literal "&lt;" typed by a user survives as "&lt;".
        assert_eq!(strip("&amp;lt; &amp;amp; &gt;", n), "&lt; &amp; >");
        // Styling is kept; unicode passes through.
        assert_eq!(
            strip("*bold* _it_ ~s~ `c` héllo", n),
            "*bold* _it_ ~s~ `c` héllo"
        );
        assert_eq!(strip("", n), "");
        assert_eq!(strip("<>", n), "");
    }
}
