//! weir's integration tests: one test binary (link once), one module per area.

mod abuse;
mod artifacts;
mod audit;
mod audit_api;
mod bad_input;
mod channels;
mod console;
mod crash;
mod daemon;
mod examples;
mod harness;
mod hostile_input;
mod lease;
mod lifecycle;
mod notify;
mod pr_preview;
mod preflight;
mod preview;
mod recover;
mod remote;
mod secrets;
mod serve;
mod sql;
mod stale;
mod state_truth;
mod upgrade_modes;
