//! The listener in-process against raw TCP clients: each abuse that once held the daemon's
//! resources is now cut off by a bound (the bounds here are short so that the tests are quick;
//! every check allows several times the bound).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const BOUND: Duration = Duration::from_millis(400);
/// Far below the time the abuse would take if it were not cut off.
const CUT_WITHIN: Duration = Duration::from_secs(4);

fn limits() -> HttpLimits {
    HttpLimits {
        max_connections: 4,
        header_timeout: BOUND,
        body_deadline: BOUND,
        max_body_bytes: 1024,
    }
}

async fn start(limits: HttpLimits) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, app, limits, shutdown.clone()));
    (addr, shutdown, server)
}

/// Everything the server sends until it closes the connection (or `CUT_WITHIN` passes).
async fn read_to_close(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + CUT_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

async fn healthz(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut s).await.0
}

#[tokio::test]
async fn a_normal_request_is_served() {
    let (addr, _shutdown, _server) = start(limits()).await;
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    )
    .await
    .unwrap();
    let (answer, _) = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
}

#[tokio::test]
async fn trickled_headers_are_cut_off() {
    let (addr, _shutdown, _server) = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for byte in head {
        if s.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut probe = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
        {
            // 408 or EOF: either way the server gave up on this client.
            assert!(n == 0 || probe.starts_with(b"HTTP/1.1 408"), "{probe:?}");
            closed = true;
            break;
        }
        if started.elapsed() > CUT_WITHIN {
            break;
        }
    }
    assert!(
        closed,
        "a head trickled for {:?} was still being read",
        started.elapsed()
    );
    assert!(started.elapsed() < CUT_WITHIN);
}

#[tokio::test]
async fn idle_connections_are_closed_and_the_cap_holds() {
    let (addr, _shutdown, _server) = start(limits()).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Over the cap: closed at once, nothing served.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let (answer, closed) = read_to_close(&mut extra).await;
    assert!(closed && answer.is_empty(), "{answer}");
    assert!(
        started.elapsed() < BOUND,
        "refused at once: {:?}",
        started.elapsed()
    );
    // The idle ones are closed after the header timeout, and the daemon answers again.
    for mut s in idle {
        let (_, closed) = read_to_close(&mut s).await;
        assert!(closed, "an idle connection stayed open");
    }
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_oversized_declared_body_is_refused_before_it_is_read() {
    let (addr, _shutdown, _server) = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000000\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        started.elapsed() < BOUND,
        "413 at once: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let (addr, _shutdown, _server) = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let chunk = "a".repeat(2000);
    let request = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_total_deadline() {
    let (addr, _shutdown, _server) = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = s.into_split();
    tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // 100 bytes at one per 50 ms would take 5 s; the deadline is 0.4 s in all.
    let (answer, _) = read_to_close(&mut reader).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < CUT_WITHIN);
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let (addr, shutdown, server) = start(limits()).await;
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    shutdown.cancel();
    tokio::time::timeout(CUT_WITHIN, server)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
