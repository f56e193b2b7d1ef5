//! Request priorities (Google SRE criticality) and how to read them from a request.

use std::error::Error;
use std::fmt;
use std::str::FromStr;

use http::HeaderName;

/// How critical a request is: Google SRE's criticality levels, most critical first.
///
/// The [`ShedLayer`](crate::ShedLayer) sheds lower levels first; its docs have the table of
/// thresholds. The default is [`Critical`](Self::Critical), the production default in the
/// SRE book (capacity is provisioned for `CRITICAL` and `CRITICAL_PLUS`).
///
/// `Priority` orders by criticality: `CriticalPlus > Critical > SheddablePlus > Sheddable`.
///
/// | level | meaning (SRE book) | header value |
/// |---|---|---|
/// | [`CriticalPlus`](Self::CriticalPlus) | serious user-visible impact if it fails | `critical_plus` |
/// | [`Critical`](Self::Critical) | production default | `critical` |
/// | [`SheddablePlus`](Self::SheddablePlus) | partial unavailability expected; batch default | `sheddable_plus` |
/// | [`Sheddable`](Self::Sheddable) | frequent partial, occasional full unavailability expected | `sheddable` |
///
/// Parsing ([`FromStr`]) accepts exactly the header values above or their upper-case
/// spelling (`CRITICAL_PLUS`, as in the SRE book and Stubby); anything else is an
/// [`InvalidPriority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Least critical: shed first, and not queued at all once the queue is overloaded.
    Sheddable,
    /// Batch traffic: queued with half the budget, and only while the queue is at most
    /// half full.
    SheddablePlus,
    /// The default: queued, shed by the controlled-delay rules.
    #[default]
    Critical,
    /// Most critical: served first, never sloughed for queueing delay, and may evict a
    /// less critical request from a full queue.
    CriticalPlus,
}

impl Priority {
    /// Every level, most critical first.
    pub const ALL: [Self; 4] = [
        Self::CriticalPlus,
        Self::Critical,
        Self::SheddablePlus,
        Self::Sheddable,
    ];

    /// The level's header value (`critical_plus`, `critical`, `sheddable_plus`,
    /// `sheddable`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CriticalPlus => "critical_plus",
            Self::Critical => "critical",
            Self::SheddablePlus => "sheddable_plus",
            Self::Sheddable => "sheddable",
        }
    }

    /// 0 for [`CriticalPlus`](Self::CriticalPlus) up to 3 for [`Sheddable`](Self::Sheddable).
    pub(crate) const fn rank(self) -> usize {
        match self {
            Self::CriticalPlus => 0,
            Self::Critical => 1,
            Self::SheddablePlus => 2,
            Self::Sheddable => 3,
        }
    }

    /// Parses a header value's bytes (see the type's docs for what is accepted).
    pub fn from_bytes(value: &[u8]) -> Result<Self, InvalidPriority> {
        Self::ALL
            .into_iter()
            .find(|p| {
                let name = p.as_str().as_bytes();
                value == name || value.eq_ignore_ascii_case(name) && is_upper(value)
            })
            .ok_or(InvalidPriority(()))
    }
}

fn is_upper(value: &[u8]) -> bool {
    !value.iter().any(u8::is_ascii_lowercase)
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = InvalidPriority;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(s.as_bytes())
    }
}

/// A priority header value that is not one of the four levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPriority(());

impl fmt::Display for InvalidPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "invalid priority: expected critical_plus, critical, sheddable_plus or sheddable",
        )
    }
}

impl Error for InvalidPriority {}

/// The header [`FromHeader::new`] reads by default: `x-request-criticality`.
pub const PRIORITY_HEADER: HeaderName = HeaderName::from_static("x-request-criticality");

/// Tells the [`ShedLayer`](crate::ShedLayer) how critical a request is.
///
/// Implemented by:
///
/// - [`Priority`] itself: every request has that priority (the layer's default is
///   [`Priority::Critical`]);
/// - any `Fn(&Req) -> Priority` closure, for any request type (for
///   `steadfast_sim::SimRequest`, say, `|r: &SimRequest| if r.class == 0 { Priority::Critical } else { Priority::Sheddable }`);
/// - [`FromExtension`]: a [`Priority`] in the `http::Request`'s extensions;
/// - [`FromHeader`]: a header (`x-request-criticality` by default).
///
/// It runs once per request, on the request path: keep it cheap.
pub trait PriorityOf<Req> {
    /// The priority of `request`.
    fn priority_of(&self, request: &Req) -> Priority;
}

impl<Req> PriorityOf<Req> for Priority {
    #[inline]
    fn priority_of(&self, _: &Req) -> Priority {
        *self
    }
}

impl<F, Req> PriorityOf<Req> for F
where
    F: Fn(&Req) -> Priority,
{
    #[inline]
    fn priority_of(&self, request: &Req) -> Priority {
        self(request)
    }
}

/// Reads a [`Priority`] from the `http::Request`'s extensions (put there by an earlier
/// layer, say after authentication); requests without one get the fallback
/// ([`Priority::Critical`] unless [`with_fallback`](Self::with_fallback) says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FromExtension {
    fallback: Priority,
}

impl FromExtension {
    /// Reads the extension, falling back to [`Priority::Critical`].
    pub const fn new() -> Self {
        Self {
            fallback: Priority::Critical,
        }
    }

    /// Sets the priority of requests without the extension.
    #[must_use]
    pub const fn with_fallback(mut self, fallback: Priority) -> Self {
        self.fallback = fallback;
        self
    }
}

impl<B> PriorityOf<http::Request<B>> for FromExtension {
    #[inline]
    fn priority_of(&self, request: &http::Request<B>) -> Priority {
        request
            .extensions()
            .get::<Priority>()
            .copied()
            .unwrap_or(self.fallback)
    }
}

/// Reads a [`Priority`] from a request header, [`PRIORITY_HEADER`]
/// (`x-request-criticality`) unless told otherwise.
///
/// The value must be one of the four level names exactly (see [`Priority`]). A request
/// without the header, or with a value that does not parse (or with the header repeated
/// with different values), gets the fallback: [`Priority::Critical`] unless
/// [`with_fallback`](Self::with_fallback) says otherwise. A malformed value never fails
/// the request; it is logged at `debug` level (target `steadfast_shed`).
///
/// The header comes from the caller: at a trust boundary, strip it or use
/// [`FromExtension`] filled in by your own authentication, so that callers cannot promote
/// themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromHeader {
    name: HeaderName,
    fallback: Priority,
}

impl Default for FromHeader {
    fn default() -> Self {
        Self::new()
    }
}

impl FromHeader {
    /// Reads [`PRIORITY_HEADER`], falling back to [`Priority::Critical`].
    pub const fn new() -> Self {
        Self {
            name: PRIORITY_HEADER,
            fallback: Priority::Critical,
        }
    }

    /// Reads the header `name` instead.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName) -> Self {
        self.name = name;
        self
    }

    /// Sets the priority of requests without a valid header.
    #[must_use]
    pub const fn with_fallback(mut self, fallback: Priority) -> Self {
        self.fallback = fallback;
        self
    }
}

impl<B> PriorityOf<http::Request<B>> for FromHeader {
    fn priority_of(&self, request: &http::Request<B>) -> Priority {
        let mut values = request.headers().get_all(&self.name).iter();
        let Some(first) = values.next() else {
            return self.fallback;
        };
        let parsed = Priority::from_bytes(first.as_bytes());
        match parsed {
            Ok(priority) if values.all(|v| Priority::from_bytes(v.as_bytes()) == Ok(priority)) => {
                priority
            }
            _ => {
                tracing::debug!(
                    target: "steadfast_shed",
                    header = %self.name,
                    fallback = %self.fallback,
                    "invalid priority header; using the fallback"
                );
                self.fallback
            }
        }
    }
}
