//! The integration tests of `dcbstore-console`: one binary, the pages in
//! headless Chromium and over raw HTTP, and the statistics it keeps. Each
//! test gets its own database, so they run in parallel.

mod console;
mod stats;
