//! `weir serve` against abusive HTTP clients: trickled headers, a huge declared body and a flood
//! of idle connections are cut off by the listener's bounds (src/serve/http.rs), and the daemon
//! keeps answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::daemon::{Options, Remote};
use crate::harness::Repo;

fn daemon() -> (Remote, crate::daemon::Serve) {
    let remote = Remote::new();
    let repo = Repo::new("http://127.0.0.1:9", None);
    remote.push(&repo, "empty repo");
    let serve = Options::following(&remote).github_webhook().start();
    (remote, serve)
}

fn connect(base: &str) -> TcpStream {
    let s = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// What the daemon sends until it closes the connection.
fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /healthz` on a new connection: the answer, or "" when the daemon closed it unanswered.
fn healthz(base: &str) -> String {
    let mut s = connect(base);
    if s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return String::new();
    }
    read_all(&mut s)
}

#[test]
fn a_ten_gigabyte_declared_body_is_413_at_once() {
    let (_remote, serve) = daemon();
    let mut s = connect(&serve.base);
    let started = Instant::now();
    s.write_all(
        b"POST /api/v1/webhooks/github HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 10000000000\r\n\r\n",
    )
    .unwrap();
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Before the fix: 400 after the 10 s body timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn trickled_headers_are_dropped_and_idle_connections_do_not_exhaust_the_daemon() {
    let (_remote, serve) = daemon();
    // Headers at one byte a second: before the fix they were read for as long as they came.
    let mut slow = connect(&serve.base);
    let started = Instant::now();
    let mut cut = false;
    for byte in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: "
        .iter()
        .chain([b'a'; 60].iter())
    {
        if slow.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        cut,
        "still reading a trickled head after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );

    // 700 idle connections: the daemon keeps at most its cap open (file descriptors bounded),
    // and answers again once the idle ones time out.
    let idle: Vec<TcpStream> = (0..700).map(|_| connect(&serve.base)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", serve.pid()))
        .unwrap()
        .count();
    assert!(
        fds < 650,
        "{fds} file descriptors open for 700 idle clients"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = healthz(&serve.base);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz does not answer ({answer:?})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(idle);
}
