//! A store wrapper that records when the last successful acquisition or renewal was SENT,
//! so a step-down bound can be checked against an instant observed independently of the
//! runner (taken just after the runner's own, so the bound is if anything slightly loose).

use std::future::Future;
use std::sync::{Arc, Mutex};

use steadfast_lease::{Lease, LeaseError, LeaseHolder, LeaseStore, LeaseTerms, StoreError};
use tokio::time::Instant;

#[derive(Clone)]
pub struct Recording<S> {
    inner: S,
    last_ok_send: Arc<Mutex<Option<Instant>>>,
}

impl<S> Recording<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            last_ok_send: Arc::default(),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// When the last successful acquisition or renewal was sent.
    ///
    /// # Panics
    ///
    /// When none succeeded yet.
    pub fn last_ok_send(&self) -> Instant {
        self.last_ok_send
            .lock()
            .unwrap()
            .expect("a successful send")
    }

    fn record(&self, sent: Instant) {
        *self.last_ok_send.lock().unwrap() = Some(sent);
    }
}

impl<S: LeaseStore> LeaseStore for Recording<S> {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        let sent = Instant::now();
        let result = self.inner.try_acquire(name, holder, terms).await;
        if let Ok(Some(_)) = &result {
            self.record(sent);
        }
        result
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let sent = Instant::now();
        let result = self.inner.renew(lease).await;
        if result.is_ok() {
            self.record(sent);
        }
        result
    }

    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), LeaseError>> + Send {
        self.inner.release(lease)
    }

    fn current(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<LeaseHolder>, StoreError>> + Send {
        self.inner.current(name)
    }
}
