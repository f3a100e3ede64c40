//! The dense policy: a few large regions per thread. Many tealets share a region; only the
//! `owner` has its live stack in place. A suspended tealet's live bytes are copied to the heap
//! only when another tealet needs the region (copy on contention).
use super::{arena, StackError, GUARD_SIZE};
use crate::tealet::Tealet;

/// Regions per thread and size.
pub(crate) const REGIONS: usize = 4;

pub(crate) struct Region {
    pub(crate) base: usize,
    pub(crate) slot: usize,
    /// The tealet whose live stack is in place, or null.
    pub(crate) owner: *mut Tealet,
}

impl Region {
    pub(crate) fn top(&self) -> usize {
        self.base + self.slot
    }
    pub(crate) fn usable(&self) -> usize {
        self.slot - GUARD_SIZE
    }
}

#[derive(Default)]
pub(crate) struct Regions {
    regions: Vec<Box<Region>>,
    next: usize,
}

impl Regions {
    /// A region of `slot` bytes for a new tealet: a free one if any, else round robin.
    pub(crate) fn pick(&mut self, slot: usize) -> Result<*mut Region, StackError> {
        let same = self.regions.iter().filter(|r| r.slot == slot).count();
        if same < REGIONS {
            let base = arena::alloc(slot)?;
            self.regions.push(Box::new(Region { base, slot, owner: std::ptr::null_mut() }));
            return Ok(&mut **self.regions.last_mut().expect("just pushed") as *mut Region);
        }
        if let Some(r) = self.regions.iter_mut().find(|r| r.slot == slot && r.owner.is_null()) {
            return Ok(&mut **r as *mut Region);
        }
        self.next = self.next.wrapping_add(1);
        let mut same: Vec<&mut Box<Region>> = self.regions.iter_mut().filter(|r| r.slot == slot).collect();
        let n = same.len();
        Ok(&mut **same[self.next % n] as *mut Region)
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        for r in self.regions.drain(..) {
            arena::trim(r.base, r.slot);
            arena::free(r.base, r.slot);
        }
    }
}
