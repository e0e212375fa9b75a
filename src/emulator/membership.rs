//! Channel membership as Slack enforces it for bots: a bot reads the history of a channel only
//! after joining it, and posts into a public channel it is not in only with
//! `chat:write.public`. Both refusals are `not_in_channel`.

use super::request::ApiError;
use super::state::{Kind, Workspace};
use super::web_api::Ctx;

/// Reading history or replies: bot tokens must be members (people can read public channels).
pub fn may_read(ctx: &Ctx, ws: &Workspace, idx: usize) -> Result<(), ApiError> {
    let ch = &ws.channels[idx];
    if ctx.is_bot() && !ch.members.contains(ctx.caller()) {
        return Err(ApiError::new("not_in_channel"));
    }
    Ok(())
}

/// Posting: a bot outside a public channel needs `chat:write.public`.
pub fn may_post(ctx: &Ctx, ws: &Workspace, idx: usize) -> Result<(), ApiError> {
    let ch = &ws.channels[idx];
    if ctx.is_bot()
        && ch.kind == Kind::Public
        && !ch.members.contains(ctx.caller())
        && !ctx.has_scope("chat:write.public")
    {
        return Err(ApiError::new("not_in_channel"));
    }
    Ok(())
}
