//! Pub/sub: SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB.

use super::CommandSpec;
use super::Ctx;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[];

/// Drops every subscription of the client (RESET).
pub fn unsubscribe_all(ctx: &mut Ctx<'_>) {
    let mut ps = ctx.shared.pubsub.lock();
    for c in std::mem::take(&mut ctx.client.channels) {
        ps.unsubscribe(&c, ctx.client.id);
    }
    for p in std::mem::take(&mut ctx.client.patterns) {
        ps.punsubscribe(&p, ctx.client.id);
    }
}
