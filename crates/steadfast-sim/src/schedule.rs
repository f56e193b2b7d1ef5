//! Piecewise-constant values over simulated time.

use std::time::Duration;

/// A value that changes in steps over the run: `initial` from the start, then each step's
/// value from its offset (measured from the start of the run) until the next step.
///
/// Used for the open-loop arrival rate and the backend's worker count.
///
/// ```
/// use std::time::Duration;
/// use steadfast_sim::Schedule;
///
/// // Netflix's harness: 50, 90, 200 and 100 requests per second, 100 s each.
/// let rate = Schedule::constant(50.0)
///     .then_at(Duration::from_secs(100), 90.0)
///     .then_at(Duration::from_secs(200), 200.0)
///     .then_at(Duration::from_secs(300), 100.0);
/// assert_eq!(*rate.at(Duration::from_secs(250)), 200.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule<T> {
    initial: T,
    steps: Vec<(Duration, T)>,
}

impl<T> Schedule<T> {
    /// The same value for the whole run.
    pub const fn constant(value: T) -> Self {
        Self {
            initial: value,
            steps: Vec::new(),
        }
    }

    /// Adds a step: from `at` on, the value is `value`. Steps may be added in any order; a
    /// step at the same offset as an earlier one replaces it.
    #[must_use]
    pub fn then_at(mut self, at: Duration, value: T) -> Self {
        match self.steps.binary_search_by_key(&at, |(t, _)| *t) {
            Ok(i) => self.steps[i].1 = value,
            Err(i) => self.steps.insert(i, (at, value)),
        }
        self
    }

    /// The value at the start of the run.
    pub const fn initial(&self) -> &T {
        &self.initial
    }

    /// The steps, ordered by offset.
    pub fn steps(&self) -> &[(Duration, T)] {
        &self.steps
    }

    /// The value in force at offset `t`.
    pub fn at(&self, t: Duration) -> &T {
        let i = self.steps.partition_point(|(at, _)| *at <= t);
        if i == 0 {
            &self.initial
        } else {
            &self.steps[i - 1].1
        }
    }

    /// The offset of the first step strictly after `t`, if any.
    pub fn next_change_after(&self, t: Duration) -> Option<Duration> {
        let i = self.steps.partition_point(|(at, _)| *at <= t);
        self.steps.get(i).map(|(at, _)| *at)
    }

    /// Every value the schedule takes.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        std::iter::once(&self.initial).chain(self.steps.iter().map(|(_, v)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_ordered_and_looked_up() {
        let s = Schedule::constant(1)
            .then_at(Duration::from_secs(20), 3)
            .then_at(Duration::from_secs(10), 2)
            .then_at(Duration::from_secs(20), 4);
        assert_eq!(*s.at(Duration::ZERO), 1);
        assert_eq!(*s.at(Duration::from_millis(9_999)), 1);
        assert_eq!(*s.at(Duration::from_secs(10)), 2);
        assert_eq!(*s.at(Duration::from_secs(25)), 4);
        assert_eq!(
            s.next_change_after(Duration::ZERO),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            s.next_change_after(Duration::from_secs(10)),
            Some(Duration::from_secs(20))
        );
        assert_eq!(s.next_change_after(Duration::from_secs(20)), None);
        assert_eq!(s.values().copied().collect::<Vec<_>>(), [1, 2, 4]);
    }
}
