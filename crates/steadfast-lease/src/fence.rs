//! [`FenceGate`]: the resource-side check that makes a lease safe to rely on.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::Fenced;
use crate::lease::FencingToken;

/// The check a protected resource runs on every write: it remembers, per resource, the
/// highest [`FencingToken`] it accepted and from which holder, and refuses
///
/// - a **lower** token (the writer's lease was superseded: it paused, or its packets were
///   delayed, past its expiry), and
/// - an **equal** token from **another** holder (a store that lost its token counter in a
///   failover handed the same token out twice; the Redis recipe can, see the crate docs).
///
/// A higher token is accepted and becomes the new bar. This is the check Kleppmann's
/// "How to do distributed locking" asks storage to make, and Chubby's `CheckSequencer()`;
/// none of the surveyed Rust lease crates ships one.
///
/// The gate must sit **at the resource**, in the same place as the write, not in the writer:
/// a writer checking its own lease before writing has a time-of-check-to-time-of-use gap
/// that no lease closes. Use [`write`](Self::write) to run the write under the gate's lock,
/// so the check and the write are one atomic step; [`admit`](Self::admit) only checks and
/// records (right when the resource is itself serialised, e.g. one task per resource).
///
/// The state lives in memory; a resource that must remember tokens across restarts stores
/// `(max token, holder)` with its data and checks it in the same transaction (for
/// PostgreSQL, a `WHERE token >= $1` condition on the row being written).
///
/// The gate is not `Clone`; share it with an `Arc`.
///
/// # Example
///
/// ```
/// use steadfast_lease::{FenceGate, FencingToken};
///
/// let gate = FenceGate::new();
/// let mut value = 0;
/// gate.write("counter", "replica-a", FencingToken::new(33), || value = 1).unwrap();
/// gate.write("counter", "replica-b", FencingToken::new(34), || value = 2).unwrap();
///
/// // replica-a paused past its lease; its late write is refused.
/// let err = gate.write("counter", "replica-a", FencingToken::new(33), || value = 3).unwrap_err();
/// assert_eq!((err.presented().get(), err.latest().get()), (33, 34));
/// assert_eq!(value, 2);
/// ```
#[derive(Default)]
pub struct FenceGate {
    resources: Mutex<HashMap<Box<str>, Latest>>,
}

#[derive(Debug, Clone)]
struct Latest {
    token: FencingToken,
    holder: Arc<str>,
}

impl FenceGate {
    /// A gate that has accepted nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn resources(&self) -> MutexGuard<'_, HashMap<Box<str>, Latest>> {
        self.resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks a write to `resource` by `holder` with `token`, and on success records the
    /// token as the highest seen.
    ///
    /// # Errors
    ///
    /// [`Fenced`] when the token is lower than the highest accepted, or equal to it but
    /// from another holder; nothing is recorded then.
    pub fn admit(&self, resource: &str, holder: &str, token: FencingToken) -> Result<(), Fenced> {
        let mut resources = self.resources();
        Self::admit_locked(&mut resources, resource, holder, token)
    }

    /// Checks the write like [`admit`](Self::admit) and, if it passes, runs `write` while
    /// still holding the gate's lock, so no write with a higher token can slip in between
    /// the check and the write. Returns what `write` returns.
    ///
    /// `write` runs under a lock shared by every resource of this gate: keep it short, and
    /// do not call the gate from inside it (that deadlocks).
    ///
    /// # Errors
    ///
    /// [`Fenced`] when the check fails; `write` is not run then.
    pub fn write<T>(
        &self,
        resource: &str,
        holder: &str,
        token: FencingToken,
        write: impl FnOnce() -> T,
    ) -> Result<T, Fenced> {
        let mut resources = self.resources();
        Self::admit_locked(&mut resources, resource, holder, token)?;
        Ok(write())
    }

    /// The highest token accepted for `resource`, and its holder.
    pub fn latest(&self, resource: &str) -> Option<(FencingToken, Arc<str>)> {
        self.resources()
            .get(resource)
            .map(|latest| (latest.token, latest.holder.clone()))
    }

    fn admit_locked(
        resources: &mut HashMap<Box<str>, Latest>,
        resource: &str,
        holder: &str,
        token: FencingToken,
    ) -> Result<(), Fenced> {
        match resources.get_mut(resource) {
            None => {
                let latest = Latest {
                    token,
                    holder: Arc::from(holder),
                };
                resources.insert(Box::from(resource), latest);
                Ok(())
            }
            Some(latest) if token > latest.token => {
                *latest = Latest {
                    token,
                    holder: Arc::from(holder),
                };
                Ok(())
            }
            Some(latest) if token == latest.token && *latest.holder == *holder => Ok(()),
            Some(latest) => {
                tracing::debug!(
                    target: "steadfast_lease",
                    resource,
                    holder,
                    token = token.get(),
                    latest = latest.token.get(),
                    latest_holder = &*latest.holder,
                    "write fenced off"
                );
                Err(Fenced {
                    resource: Arc::from(resource),
                    presented: token,
                    holder: Arc::from(holder),
                    latest: latest.token,
                    latest_holder: latest.holder.clone(),
                })
            }
        }
    }
}

impl fmt::Debug for FenceGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceGate")
            .field("resources", &self.resources().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn t(value: u64) -> FencingToken {
        FencingToken::new(value)
    }

    #[test]
    fn accepts_rising_tokens_and_repeats_from_the_same_holder() {
        let gate = FenceGate::new();
        gate.admit("r", "a", t(1)).unwrap();
        gate.admit("r", "a", t(1)).unwrap();
        gate.admit("r", "b", t(2)).unwrap();
        gate.admit("r", "a", t(5)).unwrap();
        assert_eq!(gate.latest("r"), Some((t(5), Arc::from("a"))));
    }

    #[test]
    fn rejects_a_lower_token() {
        let gate = FenceGate::new();
        gate.admit("r", "b", t(34)).unwrap();
        let err = gate.admit("r", "a", t(33)).unwrap_err();
        assert_eq!(
            (err.resource(), err.holder(), err.presented()),
            ("r", "a", t(33))
        );
        assert_eq!((err.latest(), err.latest_holder()), (t(34), "b"));
        // The same holder with an older token is refused too.
        assert!(gate.admit("r", "b", t(33)).is_err());
        assert_eq!(gate.latest("r"), Some((t(34), Arc::from("b"))));
        assert!(err.to_string().contains("token 33"), "{err}");
    }

    #[test]
    fn rejects_an_equal_token_from_another_holder() {
        let gate = FenceGate::new();
        gate.admit("r", "a", t(7)).unwrap();
        let err = gate.admit("r", "b", t(7)).unwrap_err();
        assert_eq!((err.presented(), err.latest_holder()), (t(7), "a"));
        assert_eq!(gate.latest("r"), Some((t(7), Arc::from("a"))));
    }

    #[test]
    fn resources_are_independent() {
        let gate = FenceGate::new();
        gate.admit("r1", "a", t(9)).unwrap();
        gate.admit("r2", "b", t(1)).unwrap();
        assert!(gate.latest("r3").is_none());
        assert!(format!("{gate:?}").contains("resources: 2"));
    }

    #[test]
    fn write_runs_only_when_admitted() {
        let gate = FenceGate::new();
        let mut log = Vec::new();
        assert_eq!(gate.write("r", "a", t(2), || log.push(2)), Ok(()));
        assert!(gate.write("r", "b", t(1), || log.push(1)).is_err());
        assert_eq!(log, [2]);
    }
}
