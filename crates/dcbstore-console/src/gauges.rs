//! The gauges of the store's state on `/metrics`, sampled from the
//! database by the console's background task: the head, each consumer's
//! lag, and the dead letters waiting per subscriber.
//!
//! Labels come only from the consumers the store knows (the rows of
//! `dcbstore.projections`, at most [`MAX_LABELS`] of them); dead letters of
//! any other name count under `subscriber="(other)"`, so rows written with
//! made-up names cannot grow the exporter without bound. A label whose
//! consumer is gone, or whose dead letters were all retried or discarded,
//! goes to 0 (a Prometheus alert on it clears) instead of keeping its last
//! value.

use std::collections::{HashMap, HashSet};

use super::state::Shared;
use super::stats::{lags, refresh};
use dcbstore::metrics as names;
use dcbstore::store::Store;
use dcbstore::{PgResultExt, Result};

/// Consumers labelled at most (by name order); the rest count as `(other)`.
pub(crate) const MAX_LABELS: i64 = 500;

/// The label of dead letters of consumers beyond those labelled.
const OTHER: &str = "(other)";

/// The labels each gauge was given at the last sample.
#[derive(Default)]
pub(crate) struct Gauges {
    shown: HashMap<&'static str, HashSet<String>>,
}

impl Gauges {
    /// Sets the gauges from the database.
    pub(crate) async fn sample(&mut self, store: &Store) -> Result<()> {
        let client = store.pool().get().await.db()?;
        let head: i64 = client
            .query_one("SELECT coalesce(dcbstore.head(), 0)", &[])
            .await
            .db()?
            .try_get(0)
            .db()?;
        ::metrics::gauge!(names::HEAD_POSITION).set(head as f64);
        let mut events = (Vec::new(), Vec::new());
        let mut seconds = (Vec::new(), Vec::new());
        let limit = usize::try_from(MAX_LABELS).unwrap_or(500);
        for lag in lags(&**client).await?.into_iter().take(limit) {
            let (e, s) = if lag.kind == "projection" {
                (&mut events.0, &mut seconds.0)
            } else {
                (&mut events.1, &mut seconds.1)
            };
            e.push((lag.name.clone(), lag.events as f64));
            s.push((lag.name, lag.seconds));
        }
        self.publish(names::PROJECTION_LAG_EVENTS, "projection", events.0);
        self.publish(names::PROJECTION_LAG_SECONDS, "projection", seconds.0);
        self.publish(names::SUBSCRIBER_LAG_EVENTS, "subscriber", events.1);
        self.publish(names::SUBSCRIBER_LAG_SECONDS, "subscriber", seconds.1);
        let rows = client
            .query(
                "WITH known AS (SELECT name FROM dcbstore.projections ORDER BY name LIMIT $1)
                 SELECT k.name, count(d.\"position\")
                   FROM known k LEFT JOIN dcbstore.dead_letters d ON d.subscriber = k.name
                  GROUP BY k.name
                 UNION ALL
                 SELECT $2, count(*) FROM dcbstore.dead_letters d
                  WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.name = d.subscriber)",
                &[&MAX_LABELS, &OTHER],
            )
            .await
            .db()?;
        let mut letters = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get(0).db()?;
            let n: i64 = row.try_get(1).db()?;
            letters.push((name, n as f64));
        }
        self.publish(names::DEAD_LETTERS, "subscriber", letters);
        Ok(())
    }

    /// Sets `metric{label=name}` to each value, and to 0 the labels it had
    /// at the last sample that are not among them.
    fn publish(&mut self, metric: &'static str, label: &'static str, values: Vec<(String, f64)>) {
        let now: HashSet<String> = values.iter().map(|(n, _)| n.clone()).collect();
        for (name, v) in values {
            ::metrics::gauge!(metric, label => name).set(v);
        }
        let before = self.shown.insert(metric, now.clone()).unwrap_or_default();
        for gone in before.difference(&now) {
            ::metrics::gauge!(metric, label => gone.clone()).set(0.0);
        }
    }
}

/// The console's background task: refresh, sample, sleep.
pub(crate) async fn run(console: Shared) {
    let every = console.options.stats_interval;
    let mut gauges = Gauges::default();
    loop {
        if console.options.refresh_stats {
            if let Err(e) = refresh(&console.store).await {
                tracing::warn!(error = %e, "refreshing the console's statistics failed; retrying");
            }
        }
        if let Err(e) = gauges.sample(&console.store).await {
            tracing::warn!(error = %e, "sampling the store's gauges failed; retrying");
        }
        tokio::time::sleep(every).await;
    }
}
