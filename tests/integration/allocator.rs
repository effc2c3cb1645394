//! The daemon's allocator settings (`src/memory.rs`): `weir serve` runs with glibc's per-thread
//! caches of freed chunks off, by executing itself again with `GLIBC_TUNABLES`, in the same
//! process, with the same arguments; a user's own tunables are kept, and their
//! `glibc.malloc.tcache_count` wins.

use crate::daemon::{Options, Remote, Serve};
use crate::harness::Repo;

fn daemon(env: &[(&str, &str)]) -> (Remote, Serve) {
    let remote = Remote::new();
    let repo = Repo::new("http://127.0.0.1:9", None);
    remote.push(&repo, "empty repo");
    // As a service manager starts it (this machine's tools set both).
    let mut options = Options::following(&remote)
        .without_env("SSL_CERT_FILE")
        .without_env("SSL_CERT_DIR");
    for (k, v) in env {
        options = options.env(k, v);
    }
    (remote, options.start())
}

/// Whether process `pid` was executed with the environment variable `name`.
fn has_variable(pid: u32, name: &str) -> bool {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let prefix = format!("{name}=");
    environ
        .split(|b| *b == 0)
        .any(|e| e.starts_with(prefix.as_bytes()))
}

/// `GLIBC_TUNABLES` of process `pid`, as it was executed with. glibc 2.36 ends each tunable of
/// the process's own copy of its environment (what `/proc/PID/environ` shows) with a NUL while it
/// reads them: the tunables after the first come back as entries of their own, joined here.
fn tunables_of(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut entries = environ
        .split(|b| *b == 0)
        .map(|e| String::from_utf8_lossy(e).into_owned());
    let first = entries.find_map(|e| e.strip_prefix("GLIBC_TUNABLES=").map(str::to_string))?;
    let rest = entries.take_while(|e| e.starts_with("glibc."));
    Some(
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join(":"),
    )
}

fn healthy(serve: &Serve) {
    let answer = reqwest::blocking::get(format!("{}/healthz", serve.base)).unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

#[test]
fn serve_runs_with_the_thread_caches_off_in_the_process_it_was_started_as() {
    let (_remote, serve) = daemon(&[]);
    healthy(&serve);
    // The pid the harness started is the daemon (an exec, not a child), running weir itself
    // with the arguments it was given.
    let pid = serve.pid();
    assert_eq!(
        tunables_of(pid).as_deref(),
        Some("glibc.malloc.tcache_count=0")
    );
    assert_eq!(
        std::fs::canonicalize(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::canonicalize(env!("CARGO_BIN_EXE_weir")).unwrap()
    );
    // The environment it was given, and no more: what the first run changed (git2's certificate
    // probe sets `SSL_CERT_DIR`) does not reach the second; with that variable set, OpenSSL
    // parsed the whole CA bundle at start again (+1.2 MiB idle in the daemon bench).
    assert!(!has_variable(pid, "SSL_CERT_DIR"));
    assert!(!has_variable(pid, "SSL_CERT_FILE"));
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<&str> = cmdline.trim_end_matches('\0').split('\0').collect();
    assert_eq!(args[1..3], ["serve", "--config"], "{args:?}");
    assert!(args.contains(&"--address-file"), "{args:?}");
}

#[test]
fn a_users_tunables_are_kept_and_their_thread_cache_setting_wins() {
    let (_remote, serve) = daemon(&[("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")]);
    healthy(&serve);
    assert_eq!(
        tunables_of(serve.pid()).as_deref(),
        Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0")
    );

    let (_remote, serve) = daemon(&[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")]);
    healthy(&serve);
    assert_eq!(
        tunables_of(serve.pid()).as_deref(),
        Some("glibc.malloc.tcache_count=7")
    );
}
