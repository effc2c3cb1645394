//! The process's memory: handing what was freed back to the operating system.

/// Hands freed memory back to the operating system. glibc's malloc keeps freed pages in its
/// arenas, one per thread that allocated: a daemon's idle RSS would stay its busiest moment's
/// (see BENCHMARKS.md: 48.8 → 29.7 MiB at 1,000 jobs), and a load's parsing threads leave
/// their arenas full of freed trees that no later allocation on another thread can reuse.
/// Costs at most a few milliseconds; called after a reconcile, every 10 s in `weir serve`, and
/// after the CLI's load.
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

/// Makes every thread allocate from one malloc arena, unless `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES` (`glibc.malloc.arena_max`) says otherwise.
/// For the daemon, before its threads start: glibc gives each thread that allocates an arena of
/// its own (up to eight per core), and each keeps pages that are partly in use, so an idle
/// daemon held twice its live heap in nine arenas (tokio's workers, the blocking pool, one
/// thread per SQLite connection). Its allocations are small and its threads mostly wait, so
/// sharing one arena costs no measurable latency (BENCHMARKS.md, issue 14, fifth pass). The
/// CLI keeps glibc's default: its load parses on every core at once.
pub fn share_one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
        if tuned || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        unsafe extern "C" {
            /// glibc's `mallopt(3)`.
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        /// `M_ARENA_MAX` of glibc's `<malloc.h>`.
        const M_ARENA_MAX: std::ffi::c_int = -8;
        // SAFETY: mallopt takes no pointers; called before any other thread exists.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
        }
    }
}
