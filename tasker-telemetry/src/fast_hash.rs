//! FNV-1a, for the crate's small internal maps keyed by short names (step states in a run, the
//! parameter filter's decided keys): on keys of a few bytes it costs a fraction of SipHash, and
//! these maps are bounded or built from the program's own names, so flooding is not a concern.

use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` / `HashSet` hasher state using [`Fnv`].
pub(crate) type FnvBuildHasher = BuildHasherDefault<Fnv>;

/// The FNV-1a (64-bit) hasher.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}
