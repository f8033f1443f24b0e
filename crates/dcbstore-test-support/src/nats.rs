//! [`NatsServer`] (features `testing` and `nats`): a throwaway
//! `nats-server -js` for the tests of the NATS transport.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{free_port, Error, Result};

/// What to do when no `nats-server` is found.
const NO_NATS_HINT: &str =
    "install nats-server (Debian: apt-get install nats-server) or set NATS_SERVER to its path";

/// A `nats-server` with JetStream on 127.0.0.1, on a free port, storing in
/// its own temporary directory; killed and removed on drop (or by a watchdog
/// when the process exits without dropping it).
///
/// [`stop`](Self::stop) and [`restart`](Self::restart) (on the same port,
/// with the same store) are for fault tests.
pub struct NatsServer {
    exe: PathBuf,
    dir: PathBuf,
    port: u16,
    running: Mutex<Option<Running>>,
    starts: Mutex<u32>,
}

struct Running {
    child: Child,
    watchdog: Option<Child>,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The `nats-server` program: `$NATS_SERVER` when set, else the first on
/// `PATH`, in `/usr/sbin` or in `/usr/bin`.
#[must_use]
pub fn nats_server_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/bin".into());
    dirs.into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

impl NatsServer {
    /// Starts `nats-server -js` on a free port and waits until it is ready.
    pub fn start() -> Result<NatsServer> {
        let exe = nats_server_exe()
            .ok_or_else(|| Error::new(format!("no nats-server found: {NO_NATS_HINT}")))?;
        let dir = std::env::temp_dir().join(format!(
            "dcbstore-nats-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
        let mut server = NatsServer {
            exe,
            dir,
            port: 0,
            running: Mutex::new(None),
            starts: Mutex::new(0),
        };
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port()?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::new(format!("nats-server did not start: {last}")))
    }

    /// `nats://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The TCP port (the same across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is up (started and not stopped).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.lock().is_some()
    }

    /// Kills the server (SIGKILL, as a crash would) and waits for it to exit.
    /// Its store stays for [`restart`](Self::restart). Stopping a stopped
    /// server does nothing.
    pub fn stop(&self) -> Result<()> {
        if let Some(mut running) = self.lock().take() {
            running.kill();
        }
        Ok(())
    }

    /// Starts the server again on the same port with the same store (the
    /// streams and their messages are back). Restarting a running server
    /// stops it first.
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        // The port may linger a moment after the kill.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the process and waits for "Server is ready" in its log.
    fn launch(&self) -> Result<()> {
        let n = {
            let mut starts = self
                .starts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *starts += 1;
            *starts
        };
        let log = self.dir.join(format!("nats-{n}.log"));
        let mut child = Command::new(&self.exe)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.dir.join("store"))
            .arg("-l")
            .arg(&log)
            .arg("-n")
            .arg(format!("dcbstore-test-{}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::new(format!("cannot run {}: {e}", self.exe.display())))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut stderr);
                }
                return Err(Error::new(format!(
                    "nats-server exited ({status}): {}{}",
                    stderr.trim(),
                    last_lines(&text)
                )));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::new(format!(
                    "nats-server was not ready within 30 s{}",
                    last_lines(&text)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let watchdog = self.spawn_watchdog(child.id());
        *self.lock() = Some(Running { child, watchdog });
        Ok(())
    }

    /// Kills the server and removes the directory once this process is
    /// gone, even if it never runs destructors.
    fn spawn_watchdog(&self, server: u32) -> Option<Child> {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -9 {server} 2>/dev/null; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }
}

impl Running {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its log ends with:\n{tail}")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
