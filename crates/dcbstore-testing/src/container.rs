//! The PostgreSQL 15 container of the `testcontainers` feature.

use std::process::{Command, Stdio};
use std::time::Duration;

use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ImageExt};
use testcontainers_modules::postgres::Postgres;

/// A running container and the runtime that drives its Docker client.
pub(super) struct Running {
    rt: Option<tokio::runtime::Runtime>,
    container: Option<ContainerAsync<Postgres>>,
}

/// Starts `postgres:15-alpine` with superuser `postgres`/`password` and
/// the cluster's settings; returns it with the host and port to reach it.
/// Runs on a thread of its own, so it may be called from anywhere
/// (including from inside a Tokio runtime).
pub(super) fn start(password: &str) -> Result<(Running, String, u16), String> {
    let password = password.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let (container, host, port) = rt.block_on(async {
            let container = Postgres::default()
                .with_password(&password)
                .with_tag("15-alpine")
                .with_env_var("POSTGRES_INITDB_ARGS", "--encoding=UTF8 --locale=C")
                .with_cmd([
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=128MB",
                ])
                .with_startup_timeout(Duration::from_secs(120))
                .start()
                .await
                .map_err(|e| e.to_string())?;
            let host = container.get_host().await.map_err(|e| e.to_string())?;
            let port = container
                .get_host_port_ipv4(5432)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((container, host.to_string(), port))
        })?;
        // The port is mapped on IPv4; `localhost` may resolve to ::1 first.
        let host = match host.as_str() {
            "localhost" => "127.0.0.1".to_string(),
            h => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        };
        Ok((
            Running {
                rt: Some(rt),
                container: Some(container),
            },
            host,
            port,
        ))
    })
    .join()
    .map_err(|_| "starting the container panicked".to_string())?
}

impl Running {
    /// Removes the container once this process is gone, even if it never
    /// runs destructors (the shared cluster is a static). Needs the
    /// `docker` command; best effort.
    pub(super) fn spawn_watchdog(&self) {
        let Some(id) = self.container.as_ref().map(|c| c.id().to_string()) else {
            return;
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; docker rm -f -v '{id}' >/dev/null 2>&1",
            pid = std::process::id(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let (Some(rt), Some(container)) = (self.rt.take(), self.container.take()) {
            // On a thread of its own: the drop may happen inside a runtime,
            // where neither block_on nor dropping a runtime is allowed.
            let _ = std::thread::spawn(move || {
                let _ = rt.block_on(container.rm());
                drop(rt);
            })
            .join();
        }
    }
}
