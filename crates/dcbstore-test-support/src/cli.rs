//! Running the `dcbstore` binary (the dcbstore-cli crate's) in tests and
//! checking what it printed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The binary under test: the `dcbstore` that the same `cargo test` of the
/// workspace built beside the test binaries (`target/<profile>/dcbstore`;
/// a test binary runs from `target/<profile>/deps`). A panic says how to
/// build it when it is not there.
pub fn bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("a test binary runs from target/<profile>/deps");
        let bin = dir.join(format!("dcbstore{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo test` at the workspace root, or `cargo build -p dcbstore-cli` first",
            bin.display()
        );
        bin.to_string_lossy().into_owned()
    })
}

/// A command that runs the binary under test (every test spawns it here).
pub fn dcbstore() -> Command {
    Command::new(bin())
}

/// What a run of the binary left: its exit code and its two streams.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// stdout, as UTF-8.
    pub stdout: String,
    /// stderr, as UTF-8.
    pub stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns self.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    /// stdout as exactly one JSON line.
    #[track_caller]
    pub fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line of output: {self:#?}");
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }

    /// stdout as JSON lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Asserts an error exit: `code`, nothing on stdout, and `needle` in
    /// stderr. Exit-1 errors are one line starting with `dcbstore: `.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(self.code, code, "expected exit {code}: {self:#?}");
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:#?}");
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr should mention {needle:?}: {self:#?}"
        );
        if code == 1 {
            assert!(
                self.stderr.starts_with("dcbstore: "),
                "error names the tool: {self:#?}"
            );
            assert_eq!(
                self.stderr.trim_end().lines().count(),
                1,
                "one sentence on one line: {self:#?}"
            );
        }
        self
    }

    /// Asserts `secret` appears in neither stream.
    #[track_caller]
    pub fn hides(&self, secret: &str) -> &Self {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "password shown: {self:#?}"
        );
        self
    }
}

/// Runs `cmd` with `stdin` (closed when `None`), never inheriting
/// `DATABASE_URL` unless the caller set it on `cmd`.
pub fn run_cmd(mut cmd: Command, stdin: Option<&str>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn dcbstore");
    let writer = stdin.map(|s| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let s = s.to_owned();
        // The tool may exit without reading everything: ignore EPIPE.
        std::thread::spawn(move || {
            let _ = pipe.write_all(s.as_bytes());
        })
    });
    let out = child.wait_with_output().expect("wait for dcbstore");
    if let Some(w) = writer {
        w.join().expect("stdin writer");
    }
    Run {
        code: out.status.code().expect("dcbstore exited (not killed)"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}
