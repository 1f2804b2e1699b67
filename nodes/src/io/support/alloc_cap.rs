//! An allocation cap for parsers that trust length fields: [`CappedAlloc`] (the global allocator
//! of the voxflow binary and of the fuzz targets) refuses any single allocation above the cap a
//! thread sets with [`with_cap`]. The DICOM parser reserves value buffers with `try_reserve`, so a
//! length field that claims gigabytes in a small file becomes a parse error instead of the
//! allocation; `dicom_lengths` refuses most such files earlier with a precise message, and this is
//! the backstop for what its walk does not see the parser's way.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// The largest single allocation this thread may make; no limit by default.
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn cap() -> usize {
    CAP.try_with(Cell::get).unwrap_or(usize::MAX)
}

/// The system allocator, with this thread's cap on single allocations.
pub struct CappedAlloc;

// SAFETY: every call goes to `System` with the caller's arguments, or returns null (failure),
// which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > cap() {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > cap() {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > cap() {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Runs `f` with single allocations on this thread capped at `bytes` (when [`CappedAlloc`] is
/// the global allocator; otherwise `f` runs as is). Only for code that reserves what it may not
/// get with `try_reserve`: any other allocation above the cap aborts the process.
pub fn with_cap<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            CAP.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CAP.with(|c| c.replace(bytes)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_per_thread_and_restored() {
        assert_eq!(cap(), usize::MAX);
        let inner = with_cap(1000, || {
            let other = std::thread::spawn(cap).join().expect("thread");
            (cap(), other)
        });
        assert_eq!(inner, (1000, usize::MAX));
        assert_eq!(cap(), usize::MAX);
        let r = std::panic::catch_unwind(|| with_cap(5, || panic!("inside")));
        assert!(r.is_err());
        assert_eq!(cap(), usize::MAX, "restored after a panic");
    }
}
