//! A thread's freed dedicated slots, most recently used first (warm pages are reused), trimmed
//! lazily: once many freed slots pile up, all but the warmest few are `MADV_DONTNEED`ed in a
//! batch and given back to the arena, where other threads and size classes can use them (and,
//! under an mprotect-guard budget, borrow their guards).
use super::{arena, StackError};

/// Freed slots per size class kept with their pages.
const KEEP_WARM: usize = 16;
/// Trim once this many freed slots pile up.
const TRIM_AT: usize = 256;

#[derive(Default)]
pub(crate) struct Pool {
    classes: Vec<(usize, Vec<usize>)>,
    held: usize,
}

impl Pool {
    pub(crate) fn alloc(&mut self, slot: usize) -> Result<usize, StackError> {
        if let Some((_, list)) = self.classes.iter_mut().find(|(s, _)| *s == slot) {
            if let Some(base) = list.pop() {
                self.held -= 1;
                return Ok(base);
            }
        }
        arena::alloc(slot)
    }

    pub(crate) fn release(&mut self, base: usize, slot: usize) {
        let list = match self.classes.iter().position(|(s, _)| *s == slot) {
            Some(i) => &mut self.classes[i].1,
            None => {
                self.classes.push((slot, Vec::new()));
                &mut self.classes.last_mut().expect("just pushed").1
            }
        };
        if list.try_reserve(1).is_err() {
            // Out of memory: the arena takes it back, without its pages.
            arena::trim(base, slot);
            arena::free(base, slot);
            return;
        }
        list.push(base);
        self.held += 1;
        if self.held >= TRIM_AT {
            self.trim(KEEP_WARM);
        }
    }

    /// Give all but the `keep` most recently freed slots of each class back to the arena.
    fn trim(&mut self, keep: usize) {
        for (slot, list) in &mut self.classes {
            let cold = list.len().saturating_sub(keep);
            for base in list.drain(..cold) {
                arena::trim(base, *slot);
                arena::free(base, *slot);
            }
        }
        self.held = self.classes.iter().map(|(_, l)| l.len()).sum();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.trim(0);
    }
}
