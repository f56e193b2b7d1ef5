//! The one trait every algorithm implements, and what moves when membership changes.

/// A consistent-hashing placement: maps a key's 64-bit [stable hash](crate::stable) to one
/// of `len()` members, numbered `0..len()`.
///
/// Member-based types (`Ring`, `Maglev`, `Rendezvous`) also offer lookups by key that return
/// the member itself; this trait works on indices so that generic code (bounded loads, the
/// router) can use any algorithm.
///
/// Lookups never allocate: replicas are written into the caller's buffer.
pub trait Placement {
    /// How many members there are.
    fn len(&self) -> usize;

    /// Whether there are no members.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The member that owns `hash`, or `None` when there are no members.
    fn place(&self, hash: u64) -> Option<usize>;

    /// Writes up to `out.len()` distinct members into `out`, in preference order (the owner
    /// first, then who takes over if it fails), and returns how many it wrote: the smaller of
    /// `out.len()` and `len()`.
    fn replicas(&self, hash: u64, out: &mut [usize]) -> usize;
}

/// A key whose owner differs between two placements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Move {
    /// The key's hash.
    pub hash: u64,
    /// Its owner before (`None`: there were no members).
    pub from: Option<usize>,
    /// Its owner after (`None`: there are no members).
    pub to: Option<usize>,
}

/// Which of `hashes` change owner from `before` to `after`: the keys a node must hand over
/// (or fetch) after a membership change. Works with any pair of placements.
///
/// Owners are compared by index. Removing a member shifts the indices after it down by
/// one, so after a removal map indices to ids before comparing (or use `Ring::diff` /
/// `Maglev::diff`, which compare ids and return exact hash ranges).
///
/// ```
/// use steadfast_hash::{Placement, moves};
/// # struct Modulo(usize);
/// # impl Placement for Modulo {
/// #     fn len(&self) -> usize { self.0 }
/// #     fn place(&self, h: u64) -> Option<usize> { (self.0 > 0).then(|| (h % self.0 as u64) as usize) }
/// #     fn replicas(&self, h: u64, out: &mut [usize]) -> usize { match (self.place(h), out.first_mut()) { (Some(p), Some(o)) => { *o = p; 1 } _ => 0 } }
/// # }
/// let moved: Vec<_> = moves(&Modulo(2), &Modulo(3), [10u64, 11, 12]).collect();
/// assert_eq!(moved.len(), 2); // 10 and 11 change owner; 12 stays on member 0
/// ```
pub fn moves<'a, B, A, I>(before: &'a B, after: &'a A, hashes: I) -> impl Iterator<Item = Move> + 'a
where
    B: Placement + ?Sized,
    A: Placement + ?Sized,
    I: IntoIterator<Item = u64>,
    I::IntoIter: 'a,
{
    hashes.into_iter().filter_map(move |hash| {
        let (from, to) = (before.place(hash), after.place(hash));
        (from != to).then_some(Move { hash, from, to })
    })
}
