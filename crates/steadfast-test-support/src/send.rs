//! Compile-time `Send` checks.

/// Fails to compile unless `T` is `Send`.
///
/// Use it in a test to pin down that a layered service or its response future can move
/// between threads:
///
/// ```
/// use steadfast_test_support::{assert_send, mock};
///
/// assert_send::<mock::MockService<String, String>>();
/// assert_send::<mock::ResponseFuture<String>>();
/// ```
pub const fn assert_send<T: Send>() {}
