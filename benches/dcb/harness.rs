//! Timing: concurrent loops for a fixed time, latency percentiles, three
//! trials summarized as median [min to max], and the server's CPU time
//! (from `/proc`, when the server runs on this machine).

use std::future::Future;
use std::time::{Duration, Instant};

/// What one timed workload did.
#[derive(Debug, Clone)]
pub struct Figures {
    pub ops: u64,
    pub secs: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Server CPU time spent during the workload, when it could be read.
    pub server_cpu: Option<Duration>,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// Server CPU per operation, in microseconds.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        self.server_cpu
            .map(|c| c.as_secs_f64() * 1e6 / self.ops.max(1) as f64)
    }
}

pub fn percentiles(mut all: Vec<Duration>, ops: u64, secs: f64) -> Figures {
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        ops,
        secs,
        p50: pct(0.50),
        p99: pct(0.99),
        server_cpu: None,
    }
}

/// Runs `op(task, i)` in `tasks` concurrent loops for `secs` seconds; `op`
/// returns how many operations it counts for (0 for a failed attempt).
/// The server's CPU time over the run is measured with `cpu`.
pub async fn run<F, Fut>(cpu: &ServerCpu, tasks: usize, secs: f64, op: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = u64> + Send,
{
    let before = cpu.ticks();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut lat, mut ops, mut i) = (Vec::new(), 0, 0);
                while Instant::now() < deadline {
                    let s = Instant::now();
                    let n = op(t, i).await;
                    if n > 0 {
                        lat.push(s.elapsed());
                        ops += n;
                    }
                    i += 1;
                }
                (lat, ops)
            })
        })
        .collect();
    let (mut all, mut ops) = (Vec::new(), 0);
    for h in handles {
        let (l, n) = h.await.expect("bench task");
        all.extend(l);
        ops += n;
    }
    let mut f = percentiles(all, ops, start.elapsed().as_secs_f64());
    f.server_cpu = cpu.since(before);
    f
}

/// Times `f` once, with the server CPU it used.
pub async fn timed<T, Fut: Future<Output = T>>(
    cpu: &ServerCpu,
    f: Fut,
) -> (T, f64, Option<Duration>) {
    let before = cpu.ticks();
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed().as_secs_f64(), cpu.since(before))
}

/// The median, minimum and maximum of some trials.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return Spread {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    /// `median [min to max]` with `decimals`.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} [{:.d$} to {:.d$}]",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// The CPU time of a PostgreSQL server running on this machine: its
/// postmaster (with the children it has reaped) and every live child.
/// Unknown (None) when the server is elsewhere or `/proc` is unreadable.
#[derive(Debug, Clone, Default)]
pub struct ServerCpu {
    postmaster: Option<u32>,
}

/// `/proc` counts CPU time in ticks of 1/100 s on Linux (USER_HZ).
const TICK: Duration = Duration::from_millis(10);

impl ServerCpu {
    /// Finds the server's postmaster from its data directory.
    pub async fn locate(client: &tokio_postgres::Client) -> ServerCpu {
        let dir: Option<String> = client
            .query_one("SELECT current_setting('data_directory')", &[])
            .await
            .ok()
            .and_then(|r| r.try_get(0).ok());
        let postmaster = dir
            .and_then(|d| std::fs::read_to_string(format!("{d}/postmaster.pid")).ok())
            .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok())
            .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        ServerCpu { postmaster }
    }

    /// A server that is one process (with its threads), such as a peer's
    /// server in `benches/peers`, which shares this module.
    #[allow(dead_code)] // not used by the dcb bench itself
    pub fn process(pid: u32) -> ServerCpu {
        ServerCpu {
            postmaster: Some(pid),
        }
    }

    pub fn known(&self) -> bool {
        self.postmaster.is_some()
    }

    /// Ticks used so far by the server's processes.
    pub fn ticks(&self) -> Option<u64> {
        let pm = self.postmaster?;
        let own = stat(pm)?;
        let mut total = own.utime + own.stime + own.cutime + own.cstime;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(s) = stat(pid).filter(|s| s.ppid == pm) {
                total += s.utime + s.stime;
            }
        }
        Some(total)
    }

    pub fn since(&self, before: Option<u64>) -> Option<Duration> {
        let (b, a) = (before?, self.ticks()?);
        Some(TICK * u32::try_from(a.saturating_sub(b)).unwrap_or(u32::MAX))
    }
}

struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is the
    // first (field 3 of proc(5)).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(n(4)?).ok()?,
        utime: n(14)?,
        stime: n(15)?,
        cutime: n(16)?,
        cstime: n(17)?,
    })
}

/// A setting from the environment (`BENCH_SECONDS`...), or its default when
/// it is unset or does not parse.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
