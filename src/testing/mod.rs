//! Test support shared by the unit tests (and, for the fake Flink, the benches).

pub mod fake_flink;
pub mod postgres;
