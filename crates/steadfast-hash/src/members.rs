//! A validated member list: ids, weights and the ids' stable hashes, shared by the
//! member-based algorithms.

use crate::error::{BuildError, check_weight};
use crate::stable::StableHash;

/// Members in insertion order. Indices are positions in this list; removing a member
/// shifts the members after it down by one (algorithms rebuild their tables on change).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Members<M> {
    ids: Vec<M>,
    weights: Vec<f64>,
    #[cfg_attr(feature = "serde", serde(skip))]
    hashes: Vec<u64>,
}

impl<M> Default for Members<M> {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            weights: Vec::new(),
            hashes: Vec::new(),
        }
    }
}

impl<M: StableHash + PartialEq> Members<M> {
    /// Validates and collects `(id, weight)` pairs: weights finite and positive, ids unique.
    pub(crate) fn new<I>(members: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = (M, f64)>,
    {
        let mut list = Self::default();
        for (id, weight) in members {
            list.push(id, weight)?;
        }
        Ok(list)
    }

    /// Adds a member at the end and returns its index.
    pub(crate) fn push(&mut self, id: M, weight: f64) -> Result<usize, BuildError> {
        let index = self.ids.len();
        let weight = check_weight(index, weight)?;
        if index >= u32::MAX as usize {
            return Err(BuildError::TooLarge {
                requested: index as u64 + 1,
                limit: u32::MAX as u64,
            });
        }
        let hash = id.stable_hash64();
        // Equal ids have equal hashes: compare ids only on a hash match.
        if self
            .hashes
            .iter()
            .zip(&self.ids)
            .any(|(&h, other)| h == hash && *other == id)
        {
            return Err(BuildError::DuplicateMember { index });
        }
        self.ids.push(id);
        self.weights.push(weight);
        self.hashes.push(hash);
        Ok(index)
    }

    /// Removes a member and returns the index it had.
    pub(crate) fn remove(&mut self, id: &M) -> Result<usize, BuildError> {
        let index = self.index_of(id).ok_or(BuildError::UnknownMember)?;
        self.ids.remove(index);
        self.weights.remove(index);
        self.hashes.remove(index);
        Ok(index)
    }

    /// The index of `id`, if it is a member.
    pub(crate) fn index_of(&self, id: &M) -> Option<usize> {
        let hash = id.stable_hash64();
        self.hashes
            .iter()
            .zip(&self.ids)
            .position(|(&h, other)| h == hash && other == id)
    }

    /// Recomputes the id hashes (after deserializing, where they are skipped).
    #[cfg(feature = "serde")]
    pub(crate) fn rehash(&mut self) {
        self.hashes = self.ids.iter().map(StableHash::stable_hash64).collect();
    }
}

impl<M> Members<M> {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn ids(&self) -> &[M] {
        &self.ids
    }

    pub(crate) fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The stable hash of each id, by index.
    pub(crate) fn hashes(&self) -> &[u64] {
        &self.hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_weights_and_duplicates() {
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Members::new([("a", 1.0), ("b", w)]),
                Err(BuildError::InvalidWeight { index: 1, .. })
            ));
        }
        assert_eq!(
            Members::new([("a", 1.0), ("b", 1.0), ("a", 2.0)]),
            Err(BuildError::DuplicateMember { index: 2 })
        );
        let mut m = Members::new([("a", 1.0), ("b", 2.0), ("c", 1.0)]).expect("valid");
        assert_eq!(m.remove(&"b"), Ok(1));
        assert_eq!(m.ids(), ["a", "c"]);
        assert_eq!(m.index_of(&"c"), Some(1));
        assert_eq!(m.remove(&"b"), Err(BuildError::UnknownMember));
    }
}
