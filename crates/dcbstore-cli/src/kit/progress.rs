//! Progress bars on stderr, as the kits and the `dcbstore` tool show them
//! during long commands.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps (a spinner when `None`) drawn with `template`
/// (indicatif's syntax), or a hidden one when stderr is not a terminal, so
/// that logs and pipes get no control characters.
#[must_use]
pub fn bar(len: Option<u64>, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}
