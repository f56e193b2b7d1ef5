//! [`EtcdLeaseStore`]: leases in etcd (feature `etcd`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, Error as EtcdError, KeyValue,
    PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

use crate::error::{LeaseError, LeaseLost, StoreError};
use crate::lease::{FencingToken, Lease, LeaseHolder, LeaseTerms};
use crate::store::LeaseStore;

/// The key prefix when none is set: `steadfast/lease/`.
const DEFAULT_PREFIX: &str = "steadfast/lease/";

/// The longest ttl etcd grants (`MaxLeaseTTL` in `server/lease/lessor.go`), in seconds.
const MAX_TTL_SECS: u64 = 9_000_000_000;

/// A [`LeaseStore`] in etcd: the recipe of etcd's own `concurrency` package (an etcd lease
/// per holder, a transaction on `create_revision == 0`), with the key's create revision as
/// the fencing token.
///
/// # How it works
///
/// For a lease `name` under the key prefix `p` (default `steadfast/lease/`):
///
/// | key | value | attached to |
/// |---|---|---|
/// | `p` `lease/` name | the holder | an etcd lease of `ceil(ttl)` whole seconds: etcd's own clock decides when the lease ends |
/// | `p` `delay/` name | the holder | an etcd lease of `ceil(ttl + takeover delay)` seconds, only with a takeover delay |
///
/// - **acquire** (2 round trips: `LeaseGrant`, then one `Txn`; 3 with a takeover delay,
///   plus a `LeaseRevoke` per granted lease when the name is taken): grant an etcd lease,
///   then `If(create_revision(key) == 0 && create_revision(delay) == 0)
///   Then(Put(key, holder, lease)) Else(Txn(If(value(key) == holder) Then(Put(key, holder,
///   lease), Get(key))))`. A put on an existing key keeps its create revision, so the same
///   holder acquiring again keeps its token and gets the fresh ttl.
/// - **renew** (2 round trips): `Txn(If(create_revision(key) == token && value(key) ==
///   holder) Then(Get(key)))`, then one `LeaseKeepAlive` of the etcd lease the key is
///   attached to (a lease etcd no longer knows, expired or revoked, answers ttl 0).
/// - **release** (1 round trip, plus a best-effort `LeaseRevoke`): `Txn(If(create_revision(key)
///   == token && value(key) == holder) Then(Delete(key), Delete(delay)))`.
/// - **current**: one `Get` of the key: its value and create revision.
///
/// **Tokens** are create revisions: etcd's store-wide revision counter, which never goes
/// back (not even across restarts; a compaction drops history, not the counter). They
/// strictly increase per name across changes of holder, but are **not consecutive**: other
/// writes to the cluster advance the counter too. The [`Lease::handle`] is the etcd lease id
/// granted at the acquisition (renew and release do not depend on it).
///
/// A failed comparison, and a keep-alive answered with ttl 0, are [`LeaseError::Lost`]; a
/// connection, timeout or server error is a [`StoreError`] (the outcome is unknown).
///
/// # Time
///
/// etcd counts lease ttls in whole seconds: the store asks for `ceil(ttl)` (at least 1 s)
/// and reports the requested ttl, never more. etcd also raises every ttl to its minimum,
/// `ceil(1.5 × election timeout)` (2 s with the default 100 ms heartbeat and 1 s election
/// timeout), checks for expired leases every 500 ms, and extends every lease by an election
/// timeout when its leader changes. A lease therefore ends by etcd's clock at least `ttl`
/// after the request and possibly up to about a second or two later: other replicas take
/// over that much later, and holders stay safe (they stop by their own deadline).
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use steadfast_lease::{EtcdLeaseStore, LeaseStore, LeaseTerms};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = EtcdLeaseStore::connect(["http://127.0.0.1:2379"])
///     .await?
///     .with_prefix("myapp/lease/");
/// let terms = LeaseTerms::new(Duration::from_secs(15));
/// if let Some(lease) = store.try_acquire("compaction", "replica-a", terms).await? {
///     println!("leading with token {}", lease.token());
///     store.release(&lease).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EtcdLeaseStore {
    client: Client,
    prefix: Arc<str>,
}

impl EtcdLeaseStore {
    /// The connection timeout set by [`connect`](Self::connect): 1 s.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

    /// Connects to the etcd cluster at `endpoints` (`http://host:port`), with a
    /// [`CONNECT_TIMEOUT`](Self::CONNECT_TIMEOUT), and the default key prefix.
    ///
    /// The client connects lazily: an unreachable cluster is reported by the first
    /// request. For other options (TLS, authentication) build the [`Client`] yourself and
    /// use [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when an endpoint is invalid.
    pub async fn connect<E: AsRef<str>, S: AsRef<[E]>>(endpoints: S) -> Result<Self, StoreError> {
        let options = ConnectOptions::new().with_connect_timeout(Self::CONNECT_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(store_error)?;
        Ok(Self::new(client))
    }

    /// A store using `client`, with the default key prefix `steadfast/lease/`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            prefix: Arc::from(DEFAULT_PREFIX),
        }
    }

    /// Sets the prefix of every key this store uses (default `steadfast/lease/`), to keep
    /// applications or test runs sharing a cluster apart.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The client, for other requests to the same cluster.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The key holding `name`'s holder, attached to the holder's etcd lease; its create
    /// revision is the fencing token. Compare it in your own transactions
    /// (`Compare::create_revision(key, Equal, token)`) for fenced writes inside etcd.
    pub fn lease_key(&self, name: &str) -> String {
        format!("{}lease/{name}", self.prefix)
    }

    fn delay_key(&self, name: &str) -> String {
        format!("{}delay/{name}", self.prefix)
    }

    async fn grant(&self, ttl: Duration) -> Result<(i64, Duration), StoreError> {
        let secs = secs_ceil(ttl);
        let response = self
            .client
            .lease_client()
            .grant(i64::try_from(secs).unwrap_or(i64::MAX), None)
            .await
            .map_err(store_error)?;
        let granted = Duration::from_secs(u64::try_from(response.ttl()).unwrap_or(0));
        Ok((response.id(), ttl.min(granted)))
    }

    /// Best effort: a lease nobody revokes expires by itself.
    async fn revoke(&self, id: i64) {
        if id == 0 {
            return;
        }
        if let Err(err) = self.client.lease_client().revoke(id).await {
            tracing::debug!(lease = id, error = %err, "etcd lease revoke failed; it will expire");
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.client.kv_client().txn(txn).await.map_err(store_error)
    }

    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        let key = self.lease_key(name);
        let delay_key = self.delay_key(name);
        let (lease_id, ttl) = self.grant(terms.ttl()).await?;
        let delay_lease = if terms.takeover_delay().is_zero() {
            None
        } else {
            match self
                .grant(terms.ttl().saturating_add(terms.takeover_delay()))
                .await
            {
                Ok((id, _)) => Some(id),
                Err(err) => {
                    self.revoke(lease_id).await;
                    return Err(err);
                }
            }
        };
        let put = TxnOp::put(
            key.as_str(),
            holder,
            Some(PutOptions::new().with_lease(lease_id)),
        );
        let put_delay = delay_lease.map(|id| {
            TxnOp::put(
                delay_key.as_str(),
                holder,
                Some(PutOptions::new().with_lease(id)),
            )
        });
        let mut if_free = vec![put.clone()];
        if_free.extend(put_delay.clone());
        let mut if_mine = vec![
            put,
            put_delay.unwrap_or_else(|| TxnOp::delete(delay_key.as_str(), None)),
        ];
        if_mine.push(TxnOp::get(key.as_str(), None));
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                Compare::create_revision(delay_key.as_str(), CompareOp::Equal, 0),
            ])
            .and_then(if_free)
            .or_else([TxnOp::txn(
                Txn::new()
                    .when([Compare::value(key.as_str(), CompareOp::Equal, holder)])
                    .and_then(if_mine),
            )]);
        // On an error the outcome is unknown: the leases are kept (they may hold the key
        // now) and expire by themselves otherwise.
        let response = self.txn(txn).await?;
        let token = if response.succeeded() {
            Some(header_revision(&response)?)
        } else {
            match response.op_responses().into_iter().next() {
                Some(TxnOpResponse::Txn(inner)) if inner.succeeded() => {
                    let kv = inner
                        .op_responses()
                        .into_iter()
                        .find_map(|op| match op {
                            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
                            _ => None,
                        })
                        .ok_or_else(|| StoreError::new("etcd: no key after re-acquiring it"))?;
                    Some(kv.create_revision())
                }
                Some(TxnOpResponse::Txn(_)) => None,
                _ => return Err(StoreError::new("etcd: unexpected transaction response")),
            }
        };
        let Some(token) = token else {
            self.revoke(lease_id).await;
            if let Some(id) = delay_lease {
                self.revoke(id).await;
            }
            return Ok(None);
        };
        Ok(Some(
            Lease::new(
                name,
                holder,
                revision_token(token)?,
                LeaseTerms::new(ttl).with_takeover_delay(terms.takeover_delay()),
            )
            .with_handle(lease_id.cast_unsigned()),
        ))
    }

    /// `create_revision(key) == token && value(key) == holder`.
    fn owns(&self, lease: &Lease) -> [Compare; 2] {
        let key = self.lease_key(lease.name());
        let token = i64::try_from(lease.token().get()).unwrap_or(i64::MAX);
        [
            Compare::create_revision(key.as_str(), CompareOp::Equal, token),
            Compare::value(key, CompareOp::Equal, lease.holder()),
        ]
    }

    async fn renew_lease(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let key = self.lease_key(lease.name());
        let txn = Txn::new().when(self.owns(lease)).and_then([
            TxnOp::get(key.as_str(), None),
            TxnOp::get(self.delay_key(lease.name()), None),
        ]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(lost(lease));
        }
        let mut kvs = response.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(KeyValue::lease),
            _ => None,
        });
        let lease_id = kvs.next().flatten().unwrap_or(0);
        let delay_id = kvs.next().flatten().unwrap_or(0);
        if lease_id == 0 {
            return Err(lost(lease)); // not a key this store wrote
        }
        if !self.keep_alive(lease_id).await? {
            return Err(lost(lease));
        }
        if delay_id != 0 && delay_id != lease_id {
            // The takeover-delay marker outlives the lease anyway; a lost marker only
            // shortens the delay.
            self.keep_alive(delay_id).await?;
        }
        // The etcd lease was granted ceil(ttl) at the acquisition, so it honours the ttl.
        Ok(lease.clone().with_handle(lease_id.cast_unsigned()))
    }

    /// One keep-alive of the etcd lease `id` (which resets it to the ttl it was granted
    /// with): `false` when etcd no longer has it (expired or revoked).
    async fn keep_alive(&self, id: i64) -> Result<bool, StoreError> {
        match self.client.lease_client().keep_alive(id).await {
            Ok(_) => Ok(true),
            Err(EtcdError::LeaseKeepAliveError(message)) if message == "lease not found" => {
                Ok(false)
            }
            Err(err) => Err(store_error(err)),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), LeaseError> {
        let deleted = Some(DeleteOptions::new().with_prev_key());
        let txn = Txn::new().when(self.owns(lease)).and_then([
            TxnOp::delete(self.lease_key(lease.name()), deleted.clone()),
            TxnOp::delete(self.delay_key(lease.name()), deleted),
        ]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(lost(lease));
        }
        for op in response.op_responses() {
            if let TxnOpResponse::Delete(delete) = op {
                for kv in delete.prev_kvs() {
                    self.revoke(kv.lease()).await;
                }
            }
        }
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let response = self
            .client
            .kv_client()
            .get(self.lease_key(name), None)
            .await
            .map_err(store_error)?;
        let Some(kv) = response.kvs().first() else {
            return Ok(None);
        };
        let holder = kv.value_str().map_err(store_error)?;
        Ok(Some(LeaseHolder::new(
            holder,
            revision_token(kv.create_revision())?,
        )))
    }
}

fn header_revision(response: &TxnResponse) -> Result<i64, StoreError> {
    response
        .header()
        .map(|header| header.revision())
        .ok_or_else(|| StoreError::new("etcd: transaction response without a header"))
}

fn revision_token(revision: i64) -> Result<FencingToken, StoreError> {
    u64::try_from(revision)
        .ok()
        .filter(|&revision| revision > 0)
        .map(FencingToken::new)
        .ok_or_else(|| StoreError::new(format!("etcd: invalid create revision {revision}")))
}

/// Whole seconds, rounded up, at least 1, at most etcd's maximum.
fn secs_ceil(ttl: Duration) -> u64 {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    secs.clamp(1, MAX_TTL_SECS)
}

fn store_error(err: EtcdError) -> StoreError {
    StoreError::new(err)
}

fn lost(lease: &Lease) -> LeaseError {
    LeaseError::Lost(LeaseLost::new(lease.name_arc().clone(), lease.token()))
}

impl fmt::Debug for EtcdLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdLeaseStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl LeaseStore for EtcdLeaseStore {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        self.acquire(name, holder, terms).await
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        self.renew_lease(lease).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.release_lease(lease).await
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        self.get(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(secs_ceil(Duration::ZERO), 1);
        assert_eq!(secs_ceil(Duration::from_millis(300)), 1);
        assert_eq!(secs_ceil(Duration::from_secs(2)), 2);
        assert_eq!(secs_ceil(Duration::from_millis(2_001)), 3);
        assert_eq!(secs_ceil(Duration::MAX), MAX_TTL_SECS);
    }

    #[test]
    fn revisions_must_be_positive() {
        assert_eq!(revision_token(5).unwrap().get(), 5);
        assert!(revision_token(0).is_err());
        assert!(revision_token(-1).is_err());
    }
}
