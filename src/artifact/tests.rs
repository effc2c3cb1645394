//! Fetches against a local HTTP server made here and files in temp dirs: every bound holds, and
//! only verified content enters the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;

use super::*;

const JAR: &[u8] = b"PK\x03\x04 a small jar";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn policy() -> FetchPolicy {
    FetchPolicy {
        max_bytes: 1024,
        read_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_secs(2),
        ..FetchPolicy::default()
    }
}

/// A server with `/jar`, `/big` (declared too large), `/endless` (chunked, no length, never
/// ends), `/stall` (headers, then nothing) and `/missing`; counts requests.
async fn server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new()
        .route("/jar", get(|| async { JAR }))
        .route("/big", get(|| async { vec![0u8; 4096] }))
        .route(
            "/endless",
            get(|| async {
                let chunks = futures::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(&[0u8; 512]))
                });
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/stall",
            get(|| async {
                let chunks = futures::stream::once(async {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"PK"))
                })
                .chain(futures::stream::pending());
                Body::from_stream(chunks)
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                counted.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn a_verified_download_is_cached_and_never_fetched_twice() {
    let (base, hits) = server().await;
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{base}/jar");
    let first = fetch(&url, &sha(JAR), &policy(), cache.path())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&first.path).unwrap(), JAR);
    assert_eq!(first.bytes, JAR.len() as u64);
    let again = fetch(&url, &sha(JAR).to_uppercase(), &policy(), cache.path())
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second fetch is a cache hit"
    );
}

#[tokio::test]
async fn a_mismatch_is_refused_and_nothing_is_cached() {
    let (base, _) = server().await;
    let cache = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let err = fetch(&format!("{base}/jar"), &wrong, &policy(), cache.path())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&sha(JAR)),
        "http mismatches show the digest: {text}"
    );
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("sha256"))
        .unwrap()
        .collect();
    assert!(entries.is_empty(), "no partial or wrong file is left");
}

#[tokio::test]
async fn size_is_capped_declared_or_streamed() {
    let (base, _) = server().await;
    let cache = tempfile::tempdir().unwrap();
    for path in ["/big", "/endless"] {
        let err = fetch(&format!("{base}{path}"), &sha(JAR), &policy(), cache.path())
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { limit: 1024, .. }),
            "{path}: {err}"
        );
    }
}

#[tokio::test]
async fn a_server_that_stops_sending_times_out() {
    let (base, _) = server().await;
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = fetch(&format!("{base}/stall"), &sha(JAR), &policy(), cache.path())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts the connection and never sends a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let err = fetch(
        &format!("http://{addr}/x.jar"),
        &sha(JAR),
        &policy(),
        cache.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn http_errors_name_the_url_and_status() {
    let (base, _) = server().await;
    let cache = tempfile::tempdir().unwrap();
    let err = fetch(
        &format!("{base}/missing"),
        &sha(JAR),
        &policy(),
        cache.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), format!("{base}/missing: HTTP 404"));
}

#[tokio::test]
async fn file_urls_are_off_unless_a_root_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("app.jar");
    std::fs::write(&jar, JAR).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", jar.display());
    let err = fetch(&url, &sha(JAR), &policy(), cache.path())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::FileUrlsOff), "{err}");

    let allowed = FetchPolicy {
        file_roots: vec![dir.path().to_path_buf()],
        ..policy()
    };
    let got = fetch(&url, &sha(JAR), &allowed, cache.path())
        .await
        .unwrap();
    assert_eq!(std::fs::read(got.path).unwrap(), JAR);
}

#[tokio::test]
async fn file_urls_cannot_leave_their_root_or_read_devices() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(&secret, b"root:$6$secret").unwrap();
    std::os::unix::fs::symlink(&secret, root.path().join("link.jar")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let allowed = FetchPolicy {
        file_roots: vec![root.path().to_path_buf()],
        ..policy()
    };
    for url in [
        format!("file://{}", secret.display()),
        format!(
            "file://{}/../{}/shadow",
            root.path().display(),
            outside.path().file_name().unwrap().to_str().unwrap()
        ),
        format!("file://{}/link.jar", root.path().display()),
        format!("file://{}/no-such.jar", root.path().display()),
    ] {
        let err = fetch(&url, &sha(b"root:$6$secret"), &allowed, cache.path())
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::FileNotAllowed { .. }),
            "{url}: {err}"
        );
    }
    // /dev/zero: a device, even when its directory is allowed; never read to the end.
    let dev = FetchPolicy {
        file_roots: vec!["/dev".into()],
        ..policy()
    };
    let err = fetch("file:///dev/zero", &sha(JAR), &dev, cache.path())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::NotAFile { .. }), "{err}");
}

#[tokio::test]
async fn a_local_mismatch_does_not_reveal_the_digest() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.jar"), JAR).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let allowed = FetchPolicy {
        file_roots: vec![root.path().to_path_buf()],
        ..policy()
    };
    let url = format!("file://{}/a.jar", root.path().display());
    let err = fetch(&url, &"1".repeat(64), &allowed, cache.path())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(!text.contains(&sha(JAR)), "{text}");
    assert!(text.contains("not shown"), "{text}");
}

#[tokio::test]
async fn the_policy_is_checked_before_the_cache() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.jar"), JAR).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}/a.jar", root.path().display());
    let allowed = FetchPolicy {
        file_roots: vec![root.path().to_path_buf()],
        ..policy()
    };
    fetch(&url, &sha(JAR), &allowed, cache.path())
        .await
        .unwrap();
    // Cached now; the same URL under a policy without file:// is still refused.
    let err = fetch(&url, &sha(JAR), &policy(), cache.path())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::FileUrlsOff), "{err}");
}
