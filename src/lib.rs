//! weir: GitOps for Apache Flink.
//!
//! Data flows one way: the repo is loaded into a [`desired::DesiredState`], the clusters are observed
//! into an [`observe::Observation`], the pure [`plan`] function diffs the two (plus history from the
//! [`store`]) into a [`plan::Plan`], and [`apply`] executes it step by step through a journal.

pub mod apply;
pub mod artifact;
pub mod audit;
pub mod bundle;
pub mod cli;
pub mod clock;
pub mod desired;
pub mod diagnostic;
pub mod engine;
pub mod flink;
pub mod forge;
pub mod git;
pub mod identity;
pub mod lifecycle;
pub mod load;
pub mod memory;
pub mod notify;
pub mod observe;
pub mod plan;
pub mod redact;
pub mod render;
pub mod schedule;
pub mod secrets;
pub mod serve;
pub mod spec;
pub mod status;
pub mod store;
pub mod text;
pub mod textmap;

#[cfg(test)]
mod testing;
