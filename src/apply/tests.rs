//! Unit tests of the executor against the fake Flink (see src/testing/fake_flink.rs).
