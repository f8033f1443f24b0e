//! The metrics dcbstore emits: their names, types, labels and meaning.
//!
//! The crate records through the [`metrics`](https://docs.rs/metrics/0.24) facade: counters,
//! gauges and histograms go to whatever recorder the process has installed.
//! **Nothing is recorded until the application installs one** (for example
//! `metrics-exporter-prometheus`, or its own [`Recorder`](https://docs.rs/metrics/0.24/metrics/trait.Recorder.html)), or
//! `dcbstore serve` does; without a recorder every emit is a no-op, so a
//! library user who does not want metrics pays next to nothing. The append
//! path makes no query for them (it counts what its calls return); the
//! projection runners report what their catch-up already read, and a
//! delivery consumer reads the head once after a full batch (never when
//! idle).
//!
//! Every name starts with `dcbstore_` and is a constant of this module, to
//! be used in dashboards and alerts rather than retyped. Call [`describe`]
//! once after installing a recorder so that an exporter shows a help text
//! and a unit for each (Prometheus `# HELP` lines).
//!
//! | Area | Metrics |
//! |------|---------|
//! | Appends | [`APPENDS_TOTAL`], [`APPEND_DURATION_SECONDS`], [`APPEND_BATCH_SIZE`], [`CONFLICTS_TOTAL`], [`APPENDED_EVENTS_TOTAL`], [`HEAD_POSITION`] |
//! | Reads | [`BOUNDARY_READS_TOGETHER`] |
//! | Durable projections | [`PROJECTION_LAG_EVENTS`], [`PROJECTION_LAG_SECONDS`] |
//! | Subscribers and relays | [`SUBSCRIBER_LAG_EVENTS`], [`SUBSCRIBER_LAG_SECONDS`], [`DELIVERED_TOTAL`], [`DELIVERY_BATCH_SECONDS`], [`DELIVERY_LATENCY_SECONDS`], [`DELIVERY_FAILURES_TOTAL`], [`DELIVERY_UNAVAILABLE_TOTAL`], [`DEAD_LETTERS_TOTAL`], [`DEAD_LETTERS`], [`PUBLISHED_TOTAL`], [`PUBLISH_BATCH_SIZE`] |
//! | Dispatch and jobs | [`EMITTED_TOTAL`], [`JOBS_QUEUED_TOTAL`], [`JOBS_COMPLETED_TOTAL`], [`JOBS_FAILED_TOTAL`], [`JOBS_DROPPED_TOTAL`] |
//!
//! Appends are counted per call of [`Store`](crate::Store)'s
//! [`append`](crate::EventStore::append) /
//! [`append_since`](crate::EventStore::append_since) and of
//! [`append_in`](crate::append::append_in) /
//! [`append_in_with`](crate::append::append_in_with), whether or not the
//! batching writer shared a transaction between several of them. The head
//! gauge is only set by the store's own appends: an `append_in` has not
//! committed when it returns (the caller's transaction may still roll back).
//!
//! The dead letters waiting per subscriber ([`DEAD_LETTERS`]) change
//! through the dead-letter tools as well, so only the database knows them:
//! the library never sets that gauge (`dcbstore serve` samples it);
//! [`DEAD_LETTERS_TOTAL`] counts this process's dead-lettering.

use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Counter, label `outcome`: append calls by how they ended. `appended`
/// (written), `duplicate` (an idempotent retry: every event was already
/// stored, nothing written), `conflict` (refused by a guard of its
/// condition), `error` (anything else: invalid input, an id reused with other
/// content, the database).
pub const APPENDS_TOTAL: &str = "dcbstore_appends_total";

/// Histogram, seconds, no labels: duration of a whole append call, from the
/// checks of its input to its answer, whatever the outcome (queueing for the
/// batching writer included).
pub const APPEND_DURATION_SECONDS: &str = "dcbstore_append_duration_seconds";

/// Histogram, events, no labels: the number of events an append call was
/// given, whatever the outcome.
pub const APPEND_BATCH_SIZE: &str = "dcbstore_append_batch_size";

/// Histogram: boundary reads ([`read_boundary`](crate::EventStore::read_boundary))
/// one statement served together: concurrent decisions share a statement and
/// a round trip.
pub const BOUNDARY_READS_TOGETHER: &str = "dcbstore_boundary_reads_together";

/// Counter, no labels: conditional appends refused by a guard (the
/// `conflict` outcome of [`APPENDS_TOTAL`], for alerting on contention).
pub const CONFLICTS_TOTAL: &str = "dcbstore_conflicts_total";

/// Counter, events, no labels: events written by appends (those of
/// `appended` calls; a `duplicate` writes none).
pub const APPENDED_EVENTS_TOTAL: &str = "dcbstore_appended_events_total";

/// Gauge, no labels: the highest position this process's appends through a
/// [`Store`](crate::Store) have returned (each store and its clones keep
/// their own maximum: with stores of several databases in one process, the
/// last to append sets it). Other processes' appends move the real head
/// too: sample `dcbstore.head()` for the log's head.
pub const HEAD_POSITION: &str = "dcbstore_head_position";

/// Gauge, events, label `projection`: head minus checkpoint of a durable
/// projection, set after each batch of its catch-up (head as read when the
/// catch-up began); 0 when caught up.
pub const PROJECTION_LAG_EVENTS: &str = "dcbstore_projection_lag_events";

/// Gauge, seconds, label `projection`: now minus the recording time of the
/// last event a durable projection applied, set after each batch; 0 when
/// caught up.
pub const PROJECTION_LAG_SECONDS: &str = "dcbstore_projection_lag_seconds";

/// Gauge, events, label `subscriber`: head minus checkpoint of a durable
/// subscriber or relay, set after each delivered batch; 0 when nothing it
/// takes is left to deliver.
pub const SUBSCRIBER_LAG_EVENTS: &str = "dcbstore_subscriber_lag_events";

/// Gauge, seconds, label `subscriber`: now minus the recording time of the
/// last event a durable subscriber or relay delivered, set after each
/// delivered batch; 0 when nothing it takes is left to deliver.
pub const SUBSCRIBER_LAG_SECONDS: &str = "dcbstore_subscriber_lag_seconds";

/// Counter, events, labels `consumer` (subscriber or relay name) and `kind`
/// (`subscriber`, `relay`): events delivered from the log.
pub const DELIVERED_TOTAL: &str = "dcbstore_delivered_total";

/// Histogram, seconds, label `consumer`: duration of one successful hand-over
/// of a batch to a subscriber's handler or a relay's transport.
pub const DELIVERY_BATCH_SECONDS: &str = "dcbstore_delivery_batch_seconds";

/// Histogram, seconds, label `consumer`: from the commit of the last event of
/// a delivered batch to its delivery.
pub const DELIVERY_LATENCY_SECONDS: &str = "dcbstore_delivery_latency_seconds";

/// Counter, label `consumer`: failed delivery attempts (each retry counts;
/// an unavailable destination does not, see [`DELIVERY_UNAVAILABLE_TOTAL`]).
pub const DELIVERY_FAILURES_TOTAL: &str = "dcbstore_delivery_failures_total";

/// Counter, label `consumer`: deliveries that found the destination
/// unavailable (waited out without using attempts).
pub const DELIVERY_UNAVAILABLE_TOTAL: &str = "dcbstore_delivery_unavailable_total";

/// Counter, label `consumer`: events dead-lettered by this process after
/// their last attempt.
pub const DEAD_LETTERS_TOTAL: &str = "dcbstore_dead_letters_total";

/// Gauge, label `subscriber`: dead letters waiting in `dcbstore.dead_letters`.
/// Not set by the library's loops (the dead-letter tools change the count
/// too, so only the database knows it): `dcbstore serve` samples it.
pub const DEAD_LETTERS: &str = "dcbstore_dead_letters";

/// Counter, events, label `transport` (the transport's name): events a relay
/// published.
pub const PUBLISHED_TOTAL: &str = "dcbstore_published_total";

/// Histogram, events, label `transport`: events per publish call of a relay.
pub const PUBLISH_BATCH_SIZE: &str = "dcbstore_publish_batch_size";

/// Counter, label `level` (1 to 5): envelopes the dispatcher emitted.
pub const EMITTED_TOTAL: &str = "dcbstore_emitted_total";

/// Counter, no labels: jobs queued in a level-2 job pool.
pub const JOBS_QUEUED_TOTAL: &str = "dcbstore_jobs_queued_total";

/// Counter, no labels: jobs that succeeded (within their retries).
pub const JOBS_COMPLETED_TOTAL: &str = "dcbstore_jobs_completed_total";

/// Counter, no labels: jobs that failed every attempt.
pub const JOBS_FAILED_TOTAL: &str = "dcbstore_jobs_failed_total";

/// Counter, no labels: jobs still queued when their pool shut down (lost:
/// level 2 is not durable).
pub const JOBS_DROPPED_TOTAL: &str = "dcbstore_jobs_dropped_total";

/// Counter, label `server` (a replica's host:port/database, or `primary`):
/// reads routed there by a store with replicas.
pub const REPLICA_READS_TOTAL: &str = "dcbstore_replica_reads_total";

/// Gauge, bytes: how far the last replica checked was behind the primary's
/// WAL.
pub const REPLICA_LAG_BYTES: &str = "dcbstore_replica_lag_bytes";

/// Describes every metric above to the installed recorder: help text and
/// unit. Call it once after installing the recorder (describing before
/// installing reaches no one); calling it again is harmless.
pub fn describe() {
    describe_counter!(
        APPENDS_TOTAL,
        Unit::Count,
        "Append calls by outcome (appended, duplicate, conflict, error)"
    );
    describe_histogram!(
        APPEND_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of an append call, whatever its outcome"
    );
    describe_histogram!(APPEND_BATCH_SIZE, Unit::Count, "Events per append call");
    describe_histogram!(
        BOUNDARY_READS_TOGETHER,
        Unit::Count,
        "Boundary reads served by one statement"
    );
    describe_counter!(
        CONFLICTS_TOTAL,
        Unit::Count,
        "Conditional appends refused by a guard"
    );
    describe_counter!(
        APPENDED_EVENTS_TOTAL,
        Unit::Count,
        "Events written by appends"
    );
    describe_gauge!(
        HEAD_POSITION,
        "Highest position returned to this process's appends"
    );
    describe_gauge!(
        PROJECTION_LAG_EVENTS,
        Unit::Count,
        "Head minus checkpoint of a durable projection"
    );
    describe_gauge!(
        PROJECTION_LAG_SECONDS,
        Unit::Seconds,
        "Age of the last event a durable projection applied (0 when caught up)"
    );
    describe_gauge!(
        SUBSCRIBER_LAG_EVENTS,
        Unit::Count,
        "Head minus checkpoint of a durable subscriber or relay"
    );
    describe_gauge!(
        SUBSCRIBER_LAG_SECONDS,
        Unit::Seconds,
        "Age of the last event a durable subscriber or relay delivered (0 when caught up)"
    );
    describe_counter!(
        DELIVERED_TOTAL,
        Unit::Count,
        "Events delivered from the log by subscribers and relays"
    );
    describe_histogram!(
        DELIVERY_BATCH_SECONDS,
        Unit::Seconds,
        "Duration of handing a batch to a handler or transport"
    );
    describe_histogram!(
        DELIVERY_LATENCY_SECONDS,
        Unit::Seconds,
        "From an event's commit to its delivery"
    );
    describe_counter!(
        DELIVERY_FAILURES_TOTAL,
        Unit::Count,
        "Failed delivery attempts"
    );
    describe_counter!(
        DELIVERY_UNAVAILABLE_TOTAL,
        Unit::Count,
        "Deliveries that found the destination unavailable"
    );
    describe_counter!(
        DEAD_LETTERS_TOTAL,
        Unit::Count,
        "Events dead-lettered after their last attempt"
    );
    describe_gauge!(DEAD_LETTERS, Unit::Count, "Dead letters waiting");
    describe_counter!(PUBLISHED_TOTAL, Unit::Count, "Events published by relays");
    describe_histogram!(
        PUBLISH_BATCH_SIZE,
        Unit::Count,
        "Events per publish call of a relay"
    );
    describe_counter!(
        EMITTED_TOTAL,
        Unit::Count,
        "Envelopes emitted by the dispatcher, by level"
    );
    describe_counter!(JOBS_QUEUED_TOTAL, Unit::Count, "Jobs queued");
    describe_counter!(
        REPLICA_READS_TOTAL,
        Unit::Count,
        "Reads by the server that served them (a replica or the primary)"
    );
    describe_gauge!(
        REPLICA_LAG_BYTES,
        Unit::Bytes,
        "WAL bytes the last checked replica was behind the primary"
    );
    describe_counter!(JOBS_COMPLETED_TOTAL, Unit::Count, "Jobs that succeeded");
    describe_counter!(
        JOBS_FAILED_TOTAL,
        Unit::Count,
        "Jobs that failed every attempt"
    );
    describe_counter!(
        JOBS_DROPPED_TOTAL,
        Unit::Count,
        "Jobs lost at pool shutdown"
    );
}

/// Seconds since `at`, for the lag gauges; 0 for a time ahead of this clock
/// (the database server's clock may run ahead of the process's).
pub fn age_seconds(at: chrono::DateTime<chrono::Utc>) -> f64 {
    (chrono::Utc::now() - at)
        .to_std()
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Every name above, for tests and exporters that list them.
pub const ALL: &[&str] = &[
    APPENDS_TOTAL,
    APPEND_DURATION_SECONDS,
    APPEND_BATCH_SIZE,
    BOUNDARY_READS_TOGETHER,
    CONFLICTS_TOTAL,
    APPENDED_EVENTS_TOTAL,
    HEAD_POSITION,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
    SUBSCRIBER_LAG_EVENTS,
    SUBSCRIBER_LAG_SECONDS,
    DELIVERED_TOTAL,
    DELIVERY_BATCH_SECONDS,
    DELIVERY_LATENCY_SECONDS,
    DELIVERY_FAILURES_TOTAL,
    DELIVERY_UNAVAILABLE_TOTAL,
    DEAD_LETTERS_TOTAL,
    DEAD_LETTERS,
    PUBLISHED_TOTAL,
    PUBLISH_BATCH_SIZE,
    EMITTED_TOTAL,
    JOBS_QUEUED_TOTAL,
    JOBS_COMPLETED_TOTAL,
    JOBS_FAILED_TOTAL,
    JOBS_DROPPED_TOTAL,
    REPLICA_READS_TOTAL,
    REPLICA_LAG_BYTES,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn every_metric_name_is_prefixed_and_listed_once() {
        let mut names = ALL.to_vec();
        // Every name constant of this file is in ALL.
        let declared = include_str!("metrics.rs")
            .lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"dcbstore_"))
            .count();
        assert_eq!(names.len(), declared, "a name constant is missing from ALL");
        assert!(
            names.iter().all(|n| n.starts_with("dcbstore_")),
            "{names:?}"
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a name is listed twice");
    }

    #[test]
    fn every_emit_site_uses_a_name_of_the_metrics_module() {
        fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("read src") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    sources(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    found.push(path);
                }
            }
        }
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read a source file");
            for kind in ["counter!(", "gauge!(", "histogram!("] {
                assert!(
                    !text.contains(&format!("{kind}\"dcbstore_")),
                    "{} names a metric with a literal: use dcbstore::metrics",
                    file.display()
                );
            }
        }
    }
}
