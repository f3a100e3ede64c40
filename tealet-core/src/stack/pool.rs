//! A thread's freed dedicated slots, most recently used first (warm pages are reused), trimmed
//! lazily: once many freed slots may hold pages, the colder ones are `MADV_DONTNEED`ed in a batch.
use super::{arena, StackError};

/// Freed slots that may keep their pages.
const KEEP_WARM: usize = 16;
/// Trim once this many untrimmed freed slots pile up.
const TRIM_AT: usize = 256;

struct Entry {
    base: usize,
    warm: bool,
}

#[derive(Default)]
pub(crate) struct Pool {
    classes: Vec<(usize, Vec<Entry>)>,
    warm: usize,
}

impl Pool {
    pub(crate) fn alloc(&mut self, slot: usize) -> Result<usize, StackError> {
        if let Some((_, list)) = self.classes.iter_mut().find(|(s, _)| *s == slot) {
            if let Some(e) = list.pop() {
                if e.warm {
                    self.warm -= 1;
                }
                return Ok(e.base);
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
        list.push(Entry { base, warm: true });
        self.warm += 1;
        if self.warm >= TRIM_AT {
            self.trim();
        }
    }

    fn trim(&mut self) {
        for (slot, list) in &mut self.classes {
            let n = list.len();
            for e in list[..n.saturating_sub(KEEP_WARM)].iter_mut().filter(|e| e.warm) {
                arena::trim(e.base, *slot);
                e.warm = false;
            }
        }
        self.warm = self.classes.iter().map(|(_, l)| l.iter().filter(|e| e.warm).count()).sum();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (slot, list) in self.classes.drain(..) {
            for e in list {
                if e.warm {
                    arena::trim(e.base, slot);
                }
                arena::free(e.base, slot);
            }
        }
    }
}
