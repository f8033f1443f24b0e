//! [`ChromeDriver`] (feature `testing`): a throwaway `chromedriver` and the
//! capabilities of a headless Chromium, for browser tests over WebDriver
//! (the console's tests drive it with fantoccini).

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::{free_port, Error, Result};

const HINT: &str =
    "install Chromium and its driver (Debian: apt-get install chromium chromium-driver), \
or set CHROMEDRIVER and CHROMIUM to their paths";

fn find(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/bin".into());
    dirs.push("/usr/lib/chromium".into());
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

/// The browser: `$CHROMIUM`, else `chromium` (or `chromium-browser`) on
/// `PATH` or in `/usr/bin`.
#[must_use]
pub fn chromium_exe() -> Option<PathBuf> {
    find("CHROMIUM", &["chromium", "chromium-browser"])
}

/// The WebDriver server: `$CHROMEDRIVER`, else `chromedriver` on `PATH` or
/// in `/usr/bin`.
#[must_use]
pub fn chromedriver_exe() -> Option<PathBuf> {
    find("CHROMEDRIVER", &["chromedriver"])
}

/// A `chromedriver` on 127.0.0.1 and a free port, stopped when dropped or
/// when the process that started it exits, whichever comes first: a test
/// binary keeps one in a `static`, which is never dropped, and must leave
/// no driver behind. Each WebDriver session it opens is its own browser
/// (own profile, own cookies), so tests in parallel share one driver.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    // The write end of the watcher's stdin: closed by the drop, or by the
    // kernel when this process ends, however it ends.
    lifeline: Option<ChildStdin>,
    port: u16,
    browser: PathBuf,
}

// Runs the driver ("$0" with "$1") under a watcher that stops it when the
// shell's stdin reaches end of file (this process closed it, or ended); the
// shell itself exits with the driver, so an early exit is seen. (Fd 3: the
// stdin of a background job of a non-interactive shell is /dev/null.)
const WATCHED: &str = r#"exec 3<&0
"$0" "$1" & d=$!
(cat <&3 >/dev/null; kill "$d" 2>/dev/null) &
exec 3<&-
wait "$d""#;

impl ChromeDriver {
    /// Starts the driver and waits until it accepts connections.
    pub fn start() -> Result<ChromeDriver> {
        let exe = chromedriver_exe()
            .ok_or_else(|| Error::new(format!("no chromedriver found: {HINT}")))?;
        let browser =
            chromium_exe().ok_or_else(|| Error::new(format!("no chromium found: {HINT}")))?;
        let port = free_port()?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHED)
            .arg(&exe)
            .arg(format!("--port={port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::new(format!("cannot start {}: {e}", exe.display())))?;
        let lifeline = child.stdin.take();
        let mut driver = ChromeDriver {
            child,
            lifeline,
            port,
            browser,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                return Err(Error::new(format!(
                    "chromedriver exited at start: {status}"
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::new("chromedriver did not listen within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(driver)
    }

    /// `http://127.0.0.1:<port>`, the WebDriver endpoint.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Capabilities of a headless Chromium with a 1280×900 window: no
    /// sandbox (tests run as root in CI containers), no GPU, no first-run
    /// prompts.
    #[must_use]
    pub fn capabilities(&self) -> Map<String, Value> {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.browser.to_string_lossy(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--hide-scrollbars"
                ]
            }
        });
        match caps {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // End of file for the watcher: it stops the driver, and the shell
        // exits with it.
        drop(self.lifeline.take());
        let _ = self.child.wait();
    }
}
