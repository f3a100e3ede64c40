//! The dense policy: a few large regions per thread. Many tealets share a region; only the
//! region's `owner` has its live stack in place. A suspended tealet's live bytes are copied to
//! the heap only when another tealet needs the region (copy on contention).
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{arena, StackError};
use crate::tealet::Home;

/// Regions per thread and size.
pub(crate) const REGIONS: usize = 4;

/// A thread's regions, each the home of the tealets on it.
#[derive(Default)]
pub(crate) struct Regions {
    homes: Vec<Arc<Home>>,
    next: usize,
}

impl Regions {
    /// A region of `slot` bytes for a new tealet of `thread`: a free one if any, else round robin.
    pub(crate) fn pick(&mut self, slot: usize, thread: &Home) -> Result<Arc<Home>, StackError> {
        let same = self.homes.iter().filter(|h| h.slot == slot).count();
        if same < REGIONS {
            let base = arena::alloc(slot)?;
            let h = Arc::new(thread.region(base, slot));
            self.homes.push(h.clone());
            return Ok(h);
        }
        if let Some(h) = self.homes.iter().find(|h| h.slot == slot && h.owner.load(Ordering::Relaxed).is_null()) {
            return Ok(h.clone());
        }
        self.next = self.next.wrapping_add(1);
        let same: Vec<&Arc<Home>> = self.homes.iter().filter(|h| h.slot == slot).collect();
        Ok(same[self.next % same.len()].clone())
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        for h in self.homes.drain(..) {
            h.retire();
            arena::trim(h.base, h.slot);
            arena::free(h.base, h.slot);
        }
    }
}
