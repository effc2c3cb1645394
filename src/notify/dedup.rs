//! De-duplication of identical events per route.
//!
//! Two events are identical when their kind, job, cluster, revision and message are. A route
//! receives an event at most once per window: the window starts at the first delivery (it is
//! fixed, not sliding, so a condition that persists is re-announced once per window). A delivery
//! that finally fails releases its slot, so the next identical event is tried again. Times are the
//! events' own (`Event::at_ms`), passed in by the caller.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::Event;

/// The identity of an event for de-duplication.
pub type Key = [u8; 32];

pub fn key(event: &Event) -> Key {
    let mut h = Sha256::new();
    h.update(event.kind.as_str().as_bytes());
    for field in [&event.job, &event.cluster, &event.revision, &event.message] {
        match field {
            // Length-prefixed, so that no two different field lists hash the same input.
            Some(s) => {
                h.update([1]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => h.update([0]),
        }
    }
    h.finalize().into()
}

/// Which (route, event) pairs were sent recently.
#[derive(Debug, Default)]
pub struct Dedup {
    window_ms: i64,
    /// (route index, key) → (time of the event that took the slot, its claim number).
    sent: HashMap<(usize, Key), (i64, u64)>,
    next_claim: u64,
}

/// Proof of a slot taken by [`Dedup::claim`]; give it back with [`Dedup::release`] when the
/// delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    route: usize,
    key: Key,
    number: u64,
}

impl Dedup {
    pub fn new(window_ms: i64) -> Dedup {
        Dedup {
            window_ms: window_ms.max(0),
            ..Dedup::default()
        }
    }

    /// Takes the slot for `key` on `route` at `at_ms`, or `None` when an identical event took
    /// it less than a window ago (or a window ahead: clocks may step back).
    pub fn claim(&mut self, route: usize, key: Key, at_ms: i64) -> Option<Claim> {
        self.next_claim += 1;
        let number = self.next_claim;
        let claim = Claim { route, key, number };
        if self.window_ms == 0 {
            return Some(claim);
        }
        let window = self.window_ms;
        self.sent
            .retain(|_, (t, _)| at_ms.saturating_sub(*t) < window);
        if let Some((t, _)) = self.sent.get(&(route, key))
            && t.abs_diff(at_ms) < window as u64
        {
            return None;
        }
        self.sent.insert((route, key), (at_ms, number));
        Some(claim)
    }

    /// Gives a slot back (its delivery failed), unless a later claim took it since.
    pub fn release(&mut self, claim: Claim) {
        if let Some((_, number)) = self.sent.get(&(claim.route, claim.key))
            && *number == claim.number
        {
            self.sent.remove(&(claim.route, claim.key));
        }
    }

    /// Slots currently held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sent.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::EventKind;

    fn ev(message: &str, at_ms: i64) -> Event {
        Event::new(EventKind::DriftDetected, at_ms)
            .job("orders")
            .cluster("prod")
            .revision("abc")
            .message(message)
    }

    #[test]
    fn identity_is_kind_job_cluster_revision_message() {
        let base = ev("m", 0);
        assert_eq!(key(&base), key(&ev("m", 99_999)));
        // Time, author, links, savepoints and plan are not part of the identity.
        assert_eq!(
            key(&base),
            key(&ev("m", 5).author("x").link("a", "b").savepoint("s3://x"))
        );
        assert_ne!(key(&base), key(&ev("n", 0)));
        assert_ne!(key(&base), key(&ev("m", 0).job("other")));
        assert_ne!(key(&base), key(&ev("m", 0).cluster("other")));
        assert_ne!(key(&base), key(&ev("m", 0).revision("def")));
        let mut other_kind = ev("m", 0);
        other_kind.kind = EventKind::JobFailed;
        assert_ne!(key(&base), key(&other_kind));
        // Field boundaries matter.
        let a = Event::new(EventKind::JobFailed, 0).job("ab").cluster("c");
        let b = Event::new(EventKind::JobFailed, 0).job("a").cluster("bc");
        assert_ne!(key(&a), key(&b));
        let c = Event::new(EventKind::JobFailed, 0).job("x");
        let d = Event::new(EventKind::JobFailed, 0).cluster("x");
        assert_ne!(key(&c), key(&d));
    }

    #[test]
    fn window_is_fixed_from_the_first_delivery() {
        let mut d = Dedup::new(300_000);
        let k = key(&ev("m", 0));
        assert!(d.claim(0, k, 1_000).is_some());
        assert!(d.claim(0, k, 1_000).is_none());
        assert!(d.claim(0, k, 300_999).is_none());
        // Another route has its own slot.
        assert!(d.claim(1, k, 2_000).is_some());
        // The window ends 300 s after the first delivery, not after the last duplicate.
        assert!(d.claim(0, k, 301_000).is_some());
        assert!(d.claim(0, k, 400_000).is_none());
        // A clock stepping back does not re-open the slot.
        assert!(d.claim(0, k, 300_000).is_none());
    }

    #[test]
    fn failed_deliveries_release_their_slot() {
        let mut d = Dedup::new(60_000);
        let k = key(&ev("m", 0));
        let first = d.claim(0, k, 0).unwrap();
        d.release(first);
        let second = d.claim(0, k, 10).unwrap();
        // A stale release does not free the newer claim.
        d.release(first);
        assert!(d.claim(0, k, 20).is_none());
        d.release(second);
        assert!(d.claim(0, k, 30).is_some());
    }

    #[test]
    fn zero_window_disables_dedup_and_old_slots_are_pruned() {
        let mut d = Dedup::new(0);
        let k = key(&ev("m", 0));
        assert!(d.claim(0, k, 0).is_some());
        assert!(d.claim(0, k, 0).is_some());
        assert!(d.is_empty());

        let mut d = Dedup::new(1_000);
        for i in 0..100 {
            d.claim(0, key(&ev(&i.to_string(), 0)), i).unwrap();
        }
        assert_eq!(d.len(), 100);
        d.claim(0, k, 10_000).unwrap();
        assert_eq!(d.len(), 1);
    }
}
