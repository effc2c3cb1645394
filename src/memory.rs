//! The process's memory: handing what was freed back to the operating system.

/// Hands freed memory back to the operating system. glibc's malloc keeps freed pages in its
/// arenas, one per thread that allocated: a daemon's idle RSS would stay its busiest moment's
/// (see BENCHMARKS.md: 48.8 → 29.7 MiB at 1,000 jobs), and a load's parsing threads leave
/// their arenas full of freed trees that no later allocation on another thread can reuse.
/// Costs a few milliseconds; called after a reconcile and after the CLI's load.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            /// glibc's `malloc_trim(3)`: releases free memory at the top of the heap and the free
            /// pages inside every arena; returns 1 when it released any.
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim takes no pointers and locks each arena while it trims, so it is safe
        // to call while other threads allocate.
        unsafe {
            malloc_trim(0);
        }
    }
}
