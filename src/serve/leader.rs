//! Several `weir serve` on one PostgreSQL store: exactly one leads.
//!
//! The leader holds a lease row in the store (`leader_lease`, times by the database's clock)
//! and renews it every [`RENEW_EVERY`] for [`LEASE`]. Only the leader runs the worker (fetch,
//! plan, apply, heal, schedules, previews) and the retention loop; followers serve the read API,
//! the console and `/metrics`, and record the webhooks they accept in the store, which the
//! leader takes on its next tick.
//!
//! Fencing: the store claims the leader's epoch on every connection, and the database refuses a
//! write to the journal, applies, savepoints or job records unless that epoch holds the
//! unexpired lease — so a leader that stalls past its lease and wakes up cannot act.
//!
//! Bounds: a leader that cannot renew for [`STEP_DOWN_AFTER`] (measured from before its last
//! successful renewal, so always before the lease ends in the database) steps down: it stops
//! claiming an epoch and exits (status 3) without touching a job again; its supervisor restarts
//! it as a follower. A follower tries to take an ended lease every [`RENEW_EVERY`], so after a
//! leader dies the next one leads within `LEASE + RENEW_EVERY` (14 s) and resumes the
//! interrupted apply from the journal (the worker's start-up resume).
//!
//! A SQLite store has one process: it is always the leader and none of this runs.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::Store;

/// How long a lease lasts from its last renewal.
pub const LEASE: Duration = Duration::from_secs(12);
/// How often the leader renews (and a follower looks for an ended lease).
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// A leader that could not renew for this long steps down (well inside [`LEASE`]).
pub const STEP_DOWN_AFTER: Duration = Duration::from_secs(6);
/// The exit status of a daemon that stepped down.
pub const STEPPED_DOWN_EXIT: i32 = 3;

/// What `/readyz` and `/api/v1/status` say about leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    /// `leader` or `follower`.
    pub role: &'static str,
    /// Where the leader listens (its advertised address), when known.
    pub leader: Option<String>,
    /// The leader's epoch (PostgreSQL stores only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// False until the first election round has read the lease: before that a daemon does not
    /// know who leads, and saying "follower of nobody" would be a lie `/readyz` must not tell.
    #[serde(skip)]
    pub known: bool,
}

/// This daemon's role, shared by the election loop, the worker and the HTTP handlers.
#[derive(Debug)]
pub struct Leadership {
    view: RwLock<RoleView>,
    leading: watch::Sender<bool>,
    /// Whether the worker (fetch, plan, apply) is running on this daemon.
    worker: watch::Sender<bool>,
    /// This daemon's lease holder id and advertised address.
    me: RwLock<(String, String)>,
}

impl Leadership {
    /// A daemon alone on its store (SQLite): always the leader.
    pub fn single() -> Leadership {
        Leadership {
            view: RwLock::new(RoleView {
                role: "leader",
                leader: None,
                epoch: None,
                known: true,
            }),
            leading: watch::channel(true).0,
            worker: watch::channel(false).0,
            me: RwLock::new((String::new(), String::new())),
        }
    }

    /// Starts as a follower until the election loop takes the lease.
    pub fn elected(holder: String, address: String) -> Leadership {
        Leadership {
            view: RwLock::new(RoleView {
                role: "follower",
                leader: None,
                epoch: None,
                known: false,
            }),
            leading: watch::channel(false).0,
            worker: watch::channel(false).0,
            me: RwLock::new((holder, address)),
        }
    }

    pub fn view(&self) -> RoleView {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// This daemon's lease holder id (empty for a single daemon).
    pub fn holder(&self) -> String {
        self.me.read().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Waits until this daemon leads (at once for a single daemon); false on shutdown.
    pub async fn wait_until_leader(&self, cancel: &CancellationToken) -> bool {
        let mut rx = self.leading.subscribe();
        tokio::select! {
            r = rx.wait_for(|leading| *leading) => r.is_ok(),
            _ = cancel.cancelled() => false,
        }
    }

    /// Marks the worker running (`true`) or finished.
    pub fn set_worker_running(&self, running: bool) {
        self.worker.send_replace(running);
    }

    fn worker_busy(&self) -> bool {
        *self.worker.borrow()
    }

    async fn worker_idle(&self) {
        let mut rx = self.worker.subscribe();
        let _ = rx.wait_for(|running| !*running).await;
    }

    fn set(&self, view: RoleView) {
        let leading = view.role == "leader";
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
        self.leading.send_replace(leading);
    }
}

/// The lease holder id of this process: host, pid and a random part (a restarted daemon is a
/// new holder).
pub fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weir".into());
    format!(
        "{host}/{}/{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Runs the election until shutdown (then hands the lease over at once). Steps down by exiting
/// the process (see the module documentation). `on_trigger` receives the triggers followers
/// recorded (with the delivery body of a pull-request webhook), while leading.
///
/// `store` is the daemon's store (the one fenced); `lease` a second handle on the same database
/// with its own connections, so that renewing never waits behind the worker's queries.
pub async fn run(
    store: Store,
    lease: Store,
    leadership: Arc<Leadership>,
    cancel: CancellationToken,
    on_trigger: impl Fn(&str, Option<&str>) + Send + 'static,
) {
    let (holder, address) = leadership
        .me
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // Followers claim an epoch no lease ever has: every fenced write of theirs is refused.
    store.set_fence(Some(-1));
    let mut epoch: Option<i64> = None;
    let mut renewed_at = Instant::now();
    loop {
        // On shutdown a leader keeps its lease while its worker finishes the apply in progress
        // (within the shutdown grace), then hands over at once.
        if cancel.is_cancelled() && (epoch.is_none() || !leadership.worker_busy()) {
            break;
        }
        match epoch {
            None => {
                match lease.try_acquire_lease(&holder, &address, LEASE).await {
                    Ok(Some(e)) => {
                        renewed_at = Instant::now();
                        store.set_fence(Some(e));
                        epoch = Some(e);
                        info!(epoch = e, "leader: took the lease; this daemon leads");
                        eprintln!("weir serve: leading (epoch {e})");
                        leadership.set(RoleView {
                            role: "leader",
                            leader: Some(address.clone()),
                            epoch: Some(e),
                            known: true,
                        });
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => warn!("leader election: {:#}", anyhow::Error::from(e)),
                }
                note_leader(&lease, &leadership).await;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
            }
            Some(e) => {
                let deadline = renewed_at + STEP_DOWN_AFTER;
                let tick = async {
                    let started = Instant::now();
                    let renewed = lease.renew_lease(&holder, e, LEASE).await;
                    (started, renewed)
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {
                        step_down(&store, &leadership, "could not renew the lease in time");
                    }
                    (started, renewed) = tick => match renewed {
                        Ok(true) => {
                            renewed_at = started;
                            match lease.take_pending_triggers(e).await {
                                Ok(triggers) => triggers
                                    .iter()
                                    .for_each(|(t, payload)| on_trigger(t, payload.as_deref())),
                                Err(err) => warn!("leader: pending triggers: {:#}", anyhow::Error::from(err)),
                            }
                        }
                        Ok(false) => step_down(&store, &leadership, "another daemon holds the lease"),
                        Err(err) => warn!("leader: renewing the lease: {:#}", anyhow::Error::from(err)),
                    },
                }
                let next = (Instant::now() + RENEW_EVERY).min(deadline_after(renewed_at));
                let stopping = cancel.is_cancelled();
                tokio::select! {
                    _ = cancel.cancelled(), if !stopping => {}
                    _ = leadership.worker_idle(), if stopping => {}
                    _ = tokio::time::sleep_until(next) => {}
                }
            }
        }
    }
    if let Some(e) = epoch {
        // A clean shutdown hands over at once instead of after the lease.
        let _ = tokio::time::timeout(Duration::from_secs(2), lease.release_lease(&holder, e)).await;
    }
}

/// A following daemon's view of who leads, as the lease says (unchanged, so still unknown at
/// first, when the lease cannot be read).
async fn note_leader(lease: &Store, leadership: &Leadership) {
    match lease.lease_holder().await {
        Ok(Some(h)) => leadership.set(RoleView {
            role: "follower",
            leader: (!h.expired).then_some(h.address),
            epoch: Some(h.epoch),
            known: true,
        }),
        Ok(None) => leadership.set(RoleView {
            role: "follower",
            leader: None,
            epoch: None,
            known: true,
        }),
        Err(e) => warn!(
            "leader election: reading the lease: {:#}",
            anyhow::Error::from(e)
        ),
    }
}

fn deadline_after(renewed_at: Instant) -> Instant {
    renewed_at + STEP_DOWN_AFTER
}

/// Stops acting as leader for good: every later fenced write is refused, and the process exits
/// so that no task of the worker can touch a job again (a supervisor restarts it as a follower).
fn step_down(store: &Store, leadership: &Leadership, why: &str) -> ! {
    store.set_fence(Some(-1));
    leadership.set(RoleView {
        role: "follower",
        leader: None,
        epoch: None,
        known: true,
    });
    warn!("leader: stepping down: {why}");
    eprintln!("weir serve: stepping down as leader: {why}; exiting");
    std::process::exit(STEPPED_DOWN_EXIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elected_daemon_does_not_know_its_role_until_it_read_the_lease() {
        let l = Leadership::elected("h".into(), "127.0.0.1:1".into());
        assert!(!l.view().known);
        assert!(!l.is_leader());
        l.set(RoleView {
            role: "follower",
            leader: Some("127.0.0.1:2".into()),
            epoch: Some(4),
            known: true,
        });
        assert!(l.view().known);
        assert_eq!(l.view().leader.as_deref(), Some("127.0.0.1:2"));
        assert!(Leadership::single().view().known);
        assert!(Leadership::single().is_leader());
    }
}
