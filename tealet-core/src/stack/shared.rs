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
        let mut regions = self.homes.iter().filter(|h| h.slot == slot);
        Ok(regions.nth(self.next % same).expect("`same` regions of this size").clone())
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        // A thread can end on a tealet's stack (exit() or pthread_exit() inside a tealet runs
        // the thread's destructors there): that region stays mapped, as it is, for good.
        let here = super::current_stack_address();
        for h in self.homes.drain(..) {
            h.retire();
            if (h.base..h.base + h.slot).contains(&here) {
                continue;
            }
            arena::trim(h.base, h.slot);
            arena::free(h.base, h.slot);
        }
    }
}
