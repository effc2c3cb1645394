//! The development trigger: a local jobs repo watched for changes (notify: inotify on Linux).
//!
//! The daemon still deploys commits only (it fetches the watched repo like any remote), so an
//! edit is applied once it is committed; watching just makes that happen within a moment instead
//! of at the next poll. Bursts of file events (a commit writes many files) are debounced into one
//! trigger, and events under the daemon's own state directory are ignored so that fetching into
//! the mirror cannot trigger itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::reconcile::Shared;

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {}: it is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot watch {}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Watches `path` recursively until `cancel` fires; every burst of changes outside `ignore` (the
/// state directory) triggers one reconcile `debounce` after its last event.
pub fn spawn(
    path: &Path,
    ignore: &Path,
    debounce: Duration,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    if !path.is_dir() {
        return Err(WatchError::NotADirectory {
            path: path.to_path_buf(),
        });
    }
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let ignore = ignore
        .canonicalize()
        .unwrap_or_else(|_| ignore.to_path_buf());
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if relevant(&e, &ignore) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => warn!("watch: {e}"),
        })
        .map_err(|source| WatchError::Watch {
            path: path.clone(),
            source,
        })?;
    watcher
        .watch(&path, RecursiveMode::Recursive)
        .map_err(|source| WatchError::Watch {
            path: path.clone(),
            source,
        })?;
    info!(path = %path.display(), "watching the local repo for changes");
    Ok(tokio::spawn(async move {
        // The watcher stops when dropped: it lives as long as this task.
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                got = rx.recv() => if got.is_none() { break },
            }
            // Quiet for `debounce`: the burst is over.
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(debounce) => break,
                    got = rx.recv() => if got.is_none() { return },
                }
            }
            debug!("watch: changes settled; triggering a reconcile");
            shared.trigger("watch");
        }
    }))
}

/// Whether an event is a change (not a read) of something outside `ignore`.
fn relevant(e: &notify::Event, ignore: &Path) -> bool {
    use notify::EventKind;
    if matches!(e.kind, EventKind::Access(_) | EventKind::Other) {
        return false;
    }
    e.paths.iter().any(|p| !p.starts_with(ignore))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, ModifyKind};

    fn event(kind: notify::EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn changes_outside_the_state_dir_count_reads_do_not() {
        let ignore = Path::new("/srv/jobs/.weir-state");
        let create = notify::EventKind::Create(CreateKind::File);
        assert!(relevant(&event(create, "/srv/jobs/jobs/a.yaml"), ignore));
        assert!(!relevant(
            &event(create, "/srv/jobs/.weir-state/mirror.git/HEAD"),
            ignore
        ));
        assert!(!relevant(
            &event(
                notify::EventKind::Access(AccessKind::Any),
                "/srv/jobs/jobs/a.yaml"
            ),
            ignore
        ));
        assert!(relevant(
            &event(
                notify::EventKind::Modify(ModifyKind::Any),
                "/srv/jobs/.git/refs/heads/main"
            ),
            ignore
        ));
    }
}
