//! Errors from building a placement. Lookups never fail or panic.

use std::fmt;

/// Why a placement could not be built or changed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// The algorithm needs at least one member.
    NoMembers,
    /// A weight was zero, negative, NaN or infinite (`index` is the member's position).
    InvalidWeight {
        /// Position of the member in the input.
        index: usize,
        /// The weight given.
        weight: f64,
    },
    /// Two members have the same id (`index` is the second one's position).
    DuplicateMember {
        /// Position of the duplicate in the input.
        index: usize,
    },
    /// A member to remove or change is not a member.
    UnknownMember,
    /// A Maglev table size that is not prime (the permutations need it).
    TableSizeNotPrime {
        /// The size given.
        size: u64,
    },
    /// A table or capacity too small for the members (`minimum` is what it must reach).
    TooSmall {
        /// The size given.
        size: u64,
        /// The smallest size accepted.
        minimum: u64,
    },
    /// Too many members or points for the algorithm's index type.
    TooLarge {
        /// What was asked for.
        requested: u64,
        /// The limit.
        limit: u64,
    },
    /// Another invalid parameter (bounded-load factor, points per weight...).
    InvalidParameter(&'static str),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMembers => f.write_str("no members"),
            Self::InvalidWeight { index, weight } => write!(
                f,
                "member {index} has weight {weight}; weights must be finite and greater than zero"
            ),
            Self::DuplicateMember { index } => {
                write!(f, "member {index} has the same id as an earlier member")
            }
            Self::UnknownMember => f.write_str("not a member"),
            Self::TableSizeNotPrime { size } => write!(f, "table size {size} is not prime"),
            Self::TooSmall { size, minimum } => {
                write!(f, "size {size} is too small; it must be at least {minimum}")
            }
            Self::TooLarge { requested, limit } => {
                write!(f, "{requested} is more than the limit of {limit}")
            }
            Self::InvalidParameter(what) => write!(f, "invalid parameter: {what}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Checks a weight: finite and greater than zero.
pub(crate) fn check_weight(index: usize, weight: f64) -> Result<f64, BuildError> {
    if weight.is_finite() && weight > 0.0 {
        Ok(weight)
    } else {
        Err(BuildError::InvalidWeight { index, weight })
    }
}
