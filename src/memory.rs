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

/// glibc's tunable for the number of freed chunks each thread keeps per size (default 7).
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const TCACHE_COUNT: &str = "glibc.malloc.tcache_count";

/// For `weir serve`, called by `main` right after parsing the arguments, before libgit2 starts
/// (which changes the environment) and before any thread exists: executes the daemon again (the
/// same executable, arguments and process) with glibc's per-thread caches of freed chunks off,
/// unless `GLIBC_TUNABLES` already sets `glibc.malloc.tcache_count` (the way to keep them).
/// Returns when it did not execute again: not glibc, already set, or `exec` failed (then the
/// daemon runs with glibc's default, as before).
///
/// Why: each thread keeps up to seven freed chunks of every small size for itself, and
/// `malloc_trim` cannot hand back a page that holds one. An idle daemon's worker threads held
/// ~1 MiB of heap pages that way (BENCHMARKS.md, issue 14, ninth pass); glibc reads the setting
/// only when a process starts, so it takes an `exec`. The daemon's allocations are few and its
/// threads mostly wait: trigger latency did not change measurably.
pub fn serve_without_thread_caches() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        let current = std::env::var_os("GLIBC_TUNABLES");
        let Some(tunables) = without_thread_caches(current.as_deref()) else {
            return;
        };
        let mut args = std::env::args_os();
        let mut again = std::process::Command::new("/proc/self/exe");
        if let Some(arg0) = args.next() {
            again.arg0(arg0);
        }
        // Returns only when the exec failed.
        let failed = again.args(args).env("GLIBC_TUNABLES", tunables).exec();
        eprintln!("weir: running with glibc's thread caches (could not execute again: {failed})");
    }
}

/// `GLIBC_TUNABLES` with the thread caches off; `None` when `current` sets them already (or is
/// not text, which glibc would not read either).
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
fn without_thread_caches(current: Option<&std::ffi::OsStr>) -> Option<String> {
    let off = format!("{TCACHE_COUNT}=0");
    match current.map(|c| c.to_str()) {
        None => Some(off),
        Some(None) => None,
        Some(Some(c)) if c.split(':').any(|t| t.starts_with(TCACHE_COUNT)) => None,
        Some(Some("")) => Some(off),
        Some(Some(c)) => Some(format!("{c}:{off}")),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn thread_caches_are_turned_off_once_keeping_other_tunables() {
        let off = |c: Option<&str>| without_thread_caches(c.map(OsStr::new));
        assert_eq!(off(None).as_deref(), Some("glibc.malloc.tcache_count=0"));
        assert_eq!(
            off(Some("")).as_deref(),
            Some("glibc.malloc.tcache_count=0")
        );
        assert_eq!(
            off(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0")
        );
        // Set already: by the first run (no second exec), or by the user (their value wins).
        assert_eq!(off(Some("glibc.malloc.tcache_count=0")), None);
        assert_eq!(
            off(Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=7")),
            None
        );
    }

    #[test]
    fn tunables_that_are_not_text_are_left_alone() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(
            without_thread_caches(Some(OsStr::from_bytes(b"\xff"))),
            None
        );
    }
}
