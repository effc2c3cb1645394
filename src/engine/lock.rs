//! The store lock: one process applies against a store at a time.

use std::path::PathBuf;

use crate::store::Store;

/// The path of the store's lock file: next to a SQLite file; for a PostgreSQL store (no file)
/// one per database in the temporary directory, so applies on this host exclude each other
/// (daemons on several hosts are kept apart by the leader lease and its fencing instead).
fn lock_path(store: &Store) -> PathBuf {
    if store.backend() == crate::store::Backend::Postgres {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(store.path().to_string_lossy().as_bytes());
        let name = format!("weir-pg-{}.lock", &hex::encode(digest)[..16]);
        return std::env::temp_dir().join(name);
    }
    let mut path = store.path().as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

/// Why the store lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another weir apply holds {0}; wait for it to finish")]
    Busy(String),
    #[error("locking {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Holds an exclusive lock on `<state>.lock` so that two applies never run against one store.
/// The lock is released when the returned file is dropped.
pub fn lock_store(store: &Store) -> Result<std::fs::File, LockError> {
    let path = lock_path(store);
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy(path.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).await.unwrap();
        let held = lock_store(&store).unwrap();
        let err = lock_store(&store).unwrap_err();
        assert!(matches!(err, LockError::Busy(_)), "{err}");
        assert!(err.to_string().contains("state.db.lock"), "{err}");
        drop(held);
        assert!(lock_store(&store).is_ok());
    }
}
