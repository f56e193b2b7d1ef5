//! Atomics and locks, swapped for loom's when model checking
//! (`RUSTFLAGS="--cfg steadfast_loom"`).

#[cfg(steadfast_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(steadfast_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(steadfast_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(steadfast_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
