//! Property tests (issue 13): hostile or clumsy input never panics, invalid input is a usage
//! or config error (exit 2), and nothing is sent for it. The library functions run directly
//! for speed; a handful of real-binary runs check "exit 2, nothing sent" end to end. Case
//! counts are bounded so the suite stays fast.

use crate::support::Emu;
use proptest::prelude::*;
use serde_json::Value;
use slackctl::error::Kind;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const ACTIONS: &[&str] = &[
    "chat.postMessage",
    "conversations.list",
    "users_filter_by",
    "admin.users.invite",
    "oauth.v2.access",
    "files.upload",
    "post_message",
    "reactions.add",
];

/// Parameter names the actions above really have, plus noise.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "channel",
            "text",
            "blocks",
            "attachments",
            "unfurl_links",
            "thread_ts",
            "limit",
            "types",
            "attributes",
            "channel_ids",
            "email",
            "token",
            "client_secret",
            "code",
            "http_method",
            "end_point",
            "file_path",
            "content",
            "name",
            "timestamp",
            "metadata",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,12}",
    ]
}

/// Values: JSON-ish fragments, numbers, booleans, separators and arbitrary text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\[\\]{}\",:=0-9a-zA-Z .-]{0,40}",
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i128>().prop_map(|i| i.to_string()),
        prop::sample::select(vec![
            "true", "no", "maybe", "", " ", "[]", "{}", "[{", "null", "1e300", "NaN"
        ])
        .prop_map(str::to_string),
    ]
}

/// Arbitrary JSON, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn validate(
    action: &str,
    tokens: &[String],
) -> slackctl::error::Result<serde_json::Map<String, Value>> {
    let a = slackctl::catalog::find(action).unwrap();
    let raw = slackctl::params::parse_cli(tokens)?;
    slackctl::params::validate(a, raw, slackctl::params::ValidateOpts::default())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn key_value_parsing_never_panics_and_fails_as_usage(
        action in prop::sample::select(ACTIONS.to_vec()),
        pairs in prop::collection::vec((key(), value()), 0..8),
        raw in prop::collection::vec("[^@]{0,20}", 0..3),
    ) {
        let mut tokens: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        tokens.extend(raw);
        if let Err(e) = validate(action, &tokens) {
            prop_assert_eq!(e.kind, Kind::Usage, "{}", e.message);
            prop_assert_eq!(slackctl::exit::code(&e), 2);
        }
    }

    #[test]
    fn parameters_json_never_panics_and_fails_as_usage(
        action in prop::sample::select(ACTIONS.to_vec()),
        v in json(),
        text in any::<String>(),
        wrap in any::<bool>(),
    ) {
        let a = slackctl::catalog::find(action).unwrap();
        let doc = if wrap { serde_json::json!({"parameters": v}) } else { v };
        for t in [doc.to_string(), text] {
            match slackctl::params::parse_json_params(&t, a) {
                Err(e) => prop_assert_eq!(e.kind, Kind::Usage),
                Ok(json) => {
                    let raw = slackctl::params::RawParams { pairs: Vec::new(), json };
                    if let Err(e) = slackctl::params::validate(a, raw, Default::default()) {
                        prop_assert_eq!(e.kind, Kind::Usage, "{}", e.message);
                    }
                }
            }
        }
    }

    #[test]
    fn config_loader_never_panics_and_fails_as_config(
        text in any::<String>(),
        entries in prop::collection::vec((
            prop::sample::select(vec![
                "action_token", "timeout", "retries", "api_url", "default_profile",
                "sensor:\n  mode", "sensor:\n  token", "rate_limits:\n  max_wait",
                "rate_limits:\n  tier1", "rate_limits:\n  state_file", "profiles:\n  p:\n    app_token", "admin:\n  attempts",
                "post_message_action:\n  chanel",
            ]),
            value(),
        ), 0..5),
    ) {
        let path = std::path::Path::new("prop.yaml");
        // Plain scalars unquoted (so `1e300` is a number), anything else quoted.
        let scalar = |v: &str| {
            if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c)) {
                v.to_string()
            } else {
                format!("{v:?}")
            }
        };
        let yaml: String = entries.iter().map(|(k, v)| format!("{k}: {}\n", scalar(v))).collect();
        for t in [text, yaml.clone()] {
            if let Err(e) = slackctl::config::parse(&t, path) {
                prop_assert_eq!(e.kind, Kind::Config, "{}", e.message);
                prop_assert!(e.message.contains("prop.yaml"), "{}", e.message);
            }
        }
        // And the whole resolution (ranges, URLs, profiles) from a real file.
        let file = config_file();
        std::fs::write(&file, &yaml).unwrap();
        let flags = slackctl::config::Flags { config: Some(file), ..Default::default() };
        let env = slackctl::config::Env::from_pairs(Vec::new());
        if let Err(e) = slackctl::config::resolve(&flags, &env) {
            prop_assert_eq!(e.kind, Kind::Config, "{}", e.message);
        }
    }

    #[test]
    fn strip_formatting_never_panics(
        parts in prop::collection::vec(prop_oneof![
            any::<String>(),
            prop::sample::select(vec![
                "<", ">", "|", "&amp;", "&lt;", "&gt;", "&", "<@U123>", "<@U1|bob>", "<#C1>",
                "<#C1|ops>", "<!here>", "<!subteam^S1|@team>", "<!date^1|x>", "<http://x|y>",
                "<mailto:a@b|a>", "@", "#", "!", "^", "\u{1F600}", "é",
            ]).prop_map(str::to_string),
        ], 0..12),
    ) {
        let text: String = parts.concat();
        let (users, channels) = slackctl::sensor::strip::mentions(&text);
        prop_assert!(users.len() + channels.len() <= text.len());
        let out = slackctl::sensor::strip::strip(&text, &slackctl::sensor::strip::NoNames);
        if !text.contains(['<', '&']) {
            prop_assert_eq!(out, text);
        }
    }

    #[test]
    fn templates_never_panic_and_stay_bounded(
        parts in prop::collection::vec(prop_oneof![
            "[a-z {}%()|~*+.,'\"0-9\\[\\]-]{0,12}",
            prop::sample::select(vec![
                "{{ name }}", "{{ n * n }}", "{{ 'ab' * n }}", "{% for i in range(n) %}", "{% endfor %}",
                "{{ missing }}", "{{ user.email }}", "{% set s = name ~ name %}", "{{ s }}",
                "{% if n > 1 %}", "{% endif %}", "{{ name | upper }}", "{{ (((", ")))}}", "{{ n ** 99 }}",
                "{{ [1,2] * n }}", "{{ range(n) | list | length }}", "{%", "}}", "{{ name | tojson }}",
            ]).prop_map(str::to_string),
        ], 0..10),
        n in prop_oneof![0i64..10, any::<i64>()],
        name in any::<String>(),
    ) {
        let source = parts.concat();
        let env = slackctl::bulk::template::environment(Default::default());
        let rec = serde_json::json!({"name": name, "n": n, "user": {"email": "a@b.c"}});
        match slackctl::bulk::template::render(&env, &source, rec.as_object().unwrap(), 1, "text") {
            Ok(out) => prop_assert!(out.len() <= slackctl::bulk::template::MAX_OUTPUT),
            Err(e) => {
                prop_assert_eq!(e.kind, Kind::Usage);
                prop_assert!(e.message.starts_with("record 1: parameter text: "), "{}", e.message);
            }
        }
    }

    #[test]
    fn scrub_never_shows_a_registered_secret_or_a_token(
        before in any::<String>(),
        after in any::<String>(),
        secret in "[A-Za-z0-9]{8,24}",
        tail in "[A-Za-z0-9-]{1,20}",
        prefix in prop::sample::select(vec!["xoxb-", "xoxp-", "xapp-", "xoxe.xoxp-"]),
    ) {
        slackctl::redact::register(&secret);
        let token = format!("{prefix}1{tail}");
        let text = format!("{before}{secret}{after} {token} https://u:{secret}@h/ https://hooks.slack.com/services/T/B/{tail}");
        let out = slackctl::redact::scrub(&text);
        prop_assert!(!out.contains(&secret), "{}", out);
        prop_assert!(!out.contains(&token), "{}", out);
        prop_assert!(!out.contains(&format!("/B/{tail}")), "{}", out);
    }

    #[test]
    fn seconds_never_abort(v in any::<f64>(), text in any::<String>()) {
        for range in [slackctl::limits::TIMEOUT, slackctl::limits::MAX_WAIT] {
            let ok = range.check(v).is_ok();
            prop_assert_eq!(ok, v.is_finite() && v >= range.min && v <= range.max && (range.zero || v > 0.0));
            let _ = range.parse(&text);
        }
        let _ = slackctl::limits::retry_after(v, std::time::Duration::MAX);
    }
}

/// A config file path private to this test process.
fn config_file() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| crate::support::tempdir("props-config"))
        .join("slack.yaml")
}

/// One input that validation must refuse, whatever comes with it.
fn invalid_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("channel=".to_string()),
        Just("unfurl_links=maybe".to_string()),
        Just("blocks=[{".to_string()),
        Just("end_point=chat.delete".to_string()),
        "[a-z]{3,8}".prop_map(|k| format!("zz{k}=1")), // no such parameter
        Just("noequals".to_string()),
    ]
}

/// The real binary: invalid input exits 2 and nothing reaches Slack (one emulator for all
/// cases; starting one per case would dominate the time).
#[test]
fn the_binary_sends_nothing_for_invalid_input() {
    let emu = Emu::start();
    let strategy = (
        invalid_token(),
        prop::collection::vec((key(), "[a-zA-Z0-9 ,]{0,12}"), 0..4),
    );
    let mut runner = proptest::test_runner::TestRunner::new(config(12));
    runner
        .run(&strategy, |(bad, pairs)| {
            let mut args: Vec<String> = vec![
                "run".into(),
                "chat.postMessage".into(),
                "channel=general".into(),
                "text=hi".into(),
            ];
            args.extend(pairs.iter().map(|(k, v)| format!("{k}={v}")));
            args.push(bad);
            let out = emu.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
            out.assert_no_panic();
            prop_assert_eq!(out.code, 2, "{:?}: {}", args, out.stderr);
            prop_assert!(
                emu.requests().is_empty(),
                "something was sent for {:?}",
                args
            );
            Ok(())
        })
        .unwrap();
}
