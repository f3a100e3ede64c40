//! tealet-core: tealets (one-shot stackful coroutines) with a C ABI (`include/tealet.h`).
//!
//! Layers: [`stack`] hands out stack memory (dedicated guarded slots from big arenas, or shared
//! regions whose occupants are copied out on contention), [`tealet`] switches between tealets
//! with `tealet-asm`, [`ffi`] is the C ABI, [`api`] a safe Rust API on top, [`trap`] the optional
//! stack-overflow reporter, [`threadid`] tells threads apart without a thread-local lookup;
//! `sanitizer` and `valgrind` are the optional tool hooks (cargo features `asan`, `valgrind`).

pub mod api;
pub mod ffi;
mod stack;
#[cfg(feature = "asan")]
mod sanitizer;
mod tealet;
mod threadid;
mod trap;
#[cfg(feature = "valgrind")]
mod valgrind;

pub use ffi::*;
