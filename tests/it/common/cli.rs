//! Running the `dcbstore` binary in tests: the workspace's test support.
// Each test binary uses a part of it.
#![allow(unused_imports)]

pub use dcbstore_test_support::{bin, dcbstore, run_cmd, Run};
