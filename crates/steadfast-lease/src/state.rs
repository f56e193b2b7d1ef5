//! [`LeaderState`]: what a [`Singleton`](crate::Singleton) publishes about its leadership.

use tokio::time::Instant;

use crate::lease::{FencingToken, LeaseHolder};

/// Whether this replica leads, as its [`Singleton`](crate::Singleton) last published it
/// through [`Singleton::state`](crate::Singleton::state) (a `tokio::sync::watch` channel).
///
/// `Leading` carries the local deadline: a reader must check it
/// ([`is_leading`](Self::is_leading) does), because if the runner's task stalls, nobody
/// publishes the loss, and the last message still says `Leading`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaderState {
    /// This replica holds the lease with `token`, until `deadline` unless renewed.
    Leading {
        /// The fencing token of this term.
        token: FencingToken,
        /// When this replica stops believing it leads (monotonic, local): the send time of
        /// the last successful renewal plus the ttl minus the safety margin.
        deadline: Instant,
    },
    /// Another replica leads, or nobody does, or this replica cannot tell (the store is
    /// unreachable); `leader` is the holder last seen in the store, if any.
    Following {
        /// The leader last seen, if any.
        leader: Option<LeaseHolder>,
    },
    /// The singleton stopped running (shut down, or its `run` future was dropped).
    Stopped,
}

impl LeaderState {
    /// Whether this replica leads **now**: `Leading` with a deadline still in the future.
    pub fn is_leading(&self) -> bool {
        self.is_leading_at(Instant::now())
    }

    /// Whether this replica leads at `now`.
    pub fn is_leading_at(&self, now: Instant) -> bool {
        matches!(self, Self::Leading { deadline, .. } if now < *deadline)
    }

    /// The token, when leading (whatever the deadline).
    pub fn token(&self) -> Option<FencingToken> {
        match self {
            Self::Leading { token, .. } => Some(*token),
            _ => None,
        }
    }

    /// The other replica known to lead, when following.
    pub fn leader(&self) -> Option<&LeaseHolder> {
        match self {
            Self::Following { leader } => leader.as_ref(),
            _ => None,
        }
    }
}
