//! Test hook for the crash-safety tests (`tests/integration/crash.rs`).

use crate::store::StepKind;

/// Where in a step the process may be made to crash.
#[derive(Debug, Clone, Copy)]
pub(super) enum Moment {
    /// The intent is about to be journaled.
    Before,
    /// The call reached Flink; its outcome is not yet journaled.
    Sent,
    /// The outcome is journaled.
    After,
}

/// `WEIR_FAULT_CRASH_AT=<point>` aborts the process (no destructors, no flushing: as close to
/// `kill -9` as a process can do to itself) when `point` is reached. Points are
/// `<before|sent|after>:<step kind>`.
pub(super) fn point(moment: Moment, kind: StepKind) {
    let Ok(wanted) = std::env::var("WEIR_FAULT_CRASH_AT") else {
        return;
    };
    let moment = match moment {
        Moment::Before => "before",
        Moment::Sent => "sent",
        Moment::After => "after",
    };
    let point = format!("{moment}:{kind}");
    if wanted == point {
        eprintln!("weir: fault injection: aborting at {point}");
        std::process::abort();
    }
}
