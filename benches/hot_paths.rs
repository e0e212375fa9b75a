//! Micro-benchmarks of the hot paths a user waits on, with a tiny self-contained harness
//! (no extra crates; `cargo bench --bench hot_paths`). Each case runs for about half a second
//! after a warm-up and prints the median time per operation over several batches.
//!
//! Cases: catalog lookup, argument parsing + validation, request encoding, st2 framing, a
//! Socket Mode envelope → trigger line (parse, filter, keys, payload, write), and strip
//! formatting.

use slackctl::catalog;
use slackctl::params::{self, ValidateOpts};
use slackctl::transport::encode;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn bench(name: &str, mut f: impl FnMut()) {
    for _ in 0..1000 {
        f(); // warm-up
    }
    let mut per_op: Vec<f64> = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline || per_op.len() < 5 {
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        per_op.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    per_op.sort_by(f64::total_cmp);
    let median = per_op[per_op.len() / 2];
    println!(
        "{name:<44} {median:>10.1} ns/op  ({} batches)",
        per_op.len()
    );
}

fn main() {
    println!("{:<44} {:>10}", "case", "median");
    bench("catalog::find(slack.chat.postMessage)", || {
        black_box(catalog::find(black_box("slack.chat.postMessage")));
    });
    bench("catalog::suggest(chat.postMesage)", || {
        black_box(catalog::suggest(black_box("chat.postMesage"), 3));
    });
    let action = catalog::find("chat.postMessage").unwrap();
    let args: Vec<String> = [
        "channel=C0123456",
        "text=Deploy finished :rocket:",
        "unfurl_links=false",
        "thread_ts=1700000000.000240",
        r#"blocks=[{"type":"section","text":{"type":"mrkdwn","text":"*done*"}}]"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    bench("parse + validate chat.postMessage (5 args)", || {
        let raw = params::parse_cli(black_box(&args)).unwrap();
        black_box(params::validate(action, raw, ValidateOpts::default()).unwrap());
    });
    let values = params::validate(
        action,
        params::parse_cli(&args).unwrap(),
        ValidateOpts::default(),
    )
    .unwrap();
    bench("encode chat.postMessage (JSON body)", || {
        let body = encode::encode(action, black_box(&values), catalog::Verb::Post);
        black_box(body);
    });
    bench("encode chat.postMessage (form body)", || {
        let body = encode::encode(action, black_box(&values), catalog::Verb::Get);
        black_box(body);
    });
    let answer = serde_json::json!({"ok": true, "channel": "C0123456", "ts": "1700000000.000240",
        "message": {"text": "Deploy finished :rocket:", "user": "U0BOT", "ts": "1700000000.000240"}});
    bench("st2 framing of a chat.postMessage answer", || {
        black_box(slackctl::output::st2_frame(black_box(&answer), None));
    });

    use slackctl::sensor::event::EventEnvelope;
    use slackctl::sensor::payload::{self, Delivery, Filter};
    let envelope = serde_json::json!({
        "envelope_id": "1d2e3f40-0000-4000-8000-000000000001", "type": "events_api",
        "accepts_response_payload": false, "retry_attempt": 0, "retry_reason": "",
        "payload": {"token": "x", "team_id": "T0EMULATOR", "api_app_id": "A0EMULATOR",
            "type": "event_callback", "event_id": "Ev0E00000001", "event_time": 1700000000,
            "event": {"type": "message", "channel": "C0000001", "user": "U0000001",
                "text": "Deploy <https://ci.example.com/42|#42> finished, <@U0000002> please check",
                "ts": "1700000000.000240", "event_ts": "1700000000.000240", "channel_type": "channel",
                "team": "T0EMULATOR"}}
    })
    .to_string();
    let user = serde_json::json!({"id": "U0000001", "name": "user01", "real_name": "User One",
        "is_admin": false, "is_owner": false, "is_bot": false,
        "profile": {"first_name": "User", "last_name": "One", "real_name": "User One",
            "email": "user01@example.com", "title": "Engineer"}});
    let channel = serde_json::json!({"id": "C0000001", "name": "general", "is_channel": true,
        "is_private": false, "topic": {"value": "General chat"}});
    bench("  of which: parse the envelope", || {
        black_box(serde_json::from_str::<EventEnvelope>(black_box(&envelope)).unwrap());
    });
    // The enricher caches these once per user and channel, not per event.
    let user = payload::UserInfo::of(&user);
    let channel = payload::ChannelInfo::of(&channel);
    let filter = Filter::default();
    let mut line = Vec::with_capacity(1024);
    bench("Socket Mode envelope -> trigger line", || {
        let frame: EventEnvelope = serde_json::from_str(black_box(&envelope)).unwrap();
        let callback = frame.payload.unwrap();
        let m = filter.check(callback.event.unwrap()).unwrap();
        black_box(m.keys(callback.event_id.get(), frame.envelope_id.get()));
        let p = payload::payload(
            &m,
            Some(&user),
            Some(&channel),
            m.text(),
            Delivery {
                event_id: callback.event_id.get(),
                team: callback.team_id.get(),
                enrichment: None,
            },
        );
        payload::write_line(&p, &mut line).unwrap();
        black_box(&line);
    });
    let text = "hi <@U0000002|bob>, see <https://a.example|docs> and <#C0000001|ops> &lt;3 <!here>";
    bench("strip formatting (labels, mentions, entities)", || {
        black_box(slackctl::sensor::strip::strip(
            black_box(text),
            &slackctl::sensor::strip::NoNames,
        ));
    });
}
