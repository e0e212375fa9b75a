//! Talking to Slack: request encoding ([`encode`]), the HTTP client with retries and
//! Retry-After handling ([`client`]), and cursor pagination ([`paginate`]). This module knows
//! how Slack wants requests; it knows nothing about st2 or the command line.

pub mod client;
pub mod encode;
pub mod pace;
pub mod paginate;

pub use client::{Client, ClientOptions, Request, Response};
pub use encode::Body;

/// Installs the process-wide rustls crypto provider (ring). reqwest and WebSocket TLS both
/// need exactly one; calling this more than once is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `User-Agent` sent with every request.
pub fn user_agent() -> String {
    format!(
        "slackctl/{} (+StackStorm-compatible Slack CLI)",
        env!("CARGO_PKG_VERSION")
    )
}
