//! weir's integration tests: one test binary (link once), one module per area.

mod bad_input;
mod crash;
mod examples;
mod harness;
mod lifecycle;
mod recover;
mod sql;
mod stale;
mod upgrade_modes;
