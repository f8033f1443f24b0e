//! A `metrics` recorder that keeps every emit in order, for the metrics tests.
//!
//! `metrics_util`'s `DebuggingRecorder` resets gauges and histograms on each
//! snapshot, so a gauge read as 0 may never have been set; this one logs each
//! `set`, so a test sees the gauge's whole history. It is installed as the
//! thread's local recorder: on a current-thread runtime every task of the
//! test runs on that thread, and tests running in parallel (on other
//! threads) do not see each other's metrics.

use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// One emit: the metric's name, its labels, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    /// The metric's name.
    pub name: String,
    /// Its labels, in the order given.
    pub labels: Vec<(String, String)>,
    /// What was done to it.
    pub op: Op,
}

/// What was done to the metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// A counter's increment.
    Increment(u64),
    /// A gauge set to a value.
    Set(f64),
    /// A gauge moved by a value.
    Add(f64),
    /// A histogram's sample.
    Record(f64),
}

/// Every emit of the metrics recorded on this thread while installed
/// (`metrics::set_default_local_recorder(&recording)`), in order.
#[derive(Debug, Clone, Default)]
pub struct Recording(Arc<Mutex<Vec<Emit>>>);

impl Recording {
    /// Everything emitted so far, in order.
    pub fn emits(&self) -> Vec<Emit> {
        self.0.lock().expect("recording lock").clone()
    }

    /// The sum of the increments of counter `name` with label `label`
    /// (`None`: any labels).
    pub fn count(&self, name: &str, label: Option<(&str, &str)>) -> u64 {
        self.emits()
            .iter()
            .filter(|e| e.name == name && label.is_none_or(|l| e.has(l)))
            .map(|e| match e.op {
                Op::Increment(n) => n,
                _ => 0,
            })
            .sum()
    }

    /// The values set to gauge `name` (labels: any or `label`), in order.
    pub fn sets(&self, name: &str, label: Option<(&str, &str)>) -> Vec<f64> {
        self.values(name, label, |op| match op {
            Op::Set(v) => Some(v),
            _ => None,
        })
    }

    /// The values recorded to histogram `name`, in order.
    pub fn records(&self, name: &str) -> Vec<f64> {
        self.values(name, None, |op| match op {
            Op::Record(v) => Some(v),
            _ => None,
        })
    }

    fn values(
        &self,
        name: &str,
        label: Option<(&str, &str)>,
        pick: impl Fn(Op) -> Option<f64>,
    ) -> Vec<f64> {
        self.emits()
            .iter()
            .filter(|e| e.name == name && label.is_none_or(|l| e.has(l)))
            .filter_map(|e| pick(e.op))
            .collect()
    }

    fn push(&self, key: &Key, op: Op) {
        let labels = key
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        self.0.lock().expect("recording lock").push(Emit {
            name: key.name().to_string(),
            labels,
            op,
        });
    }
}

impl Emit {
    fn has(&self, (k, v): (&str, &str)) -> bool {
        self.labels.iter().any(|(lk, lv)| lk == k && lv == v)
    }
}

struct Handle {
    key: Key,
    recording: Recording,
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.recording.push(&self.key, Op::Increment(value));
    }
    fn absolute(&self, value: u64) {
        self.recording.push(&self.key, Op::Set(value as f64));
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.recording.push(&self.key, Op::Add(value));
    }
    fn decrement(&self, value: f64) {
        self.recording.push(&self.key, Op::Add(-value));
    }
    fn set(&self, value: f64) {
        self.recording.push(&self.key, Op::Set(value));
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.recording.push(&self.key, Op::Record(value));
    }
}

impl Recording {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        Arc::new(Handle {
            key: key.clone(),
            recording: self.clone(),
        })
    }
}

impl Recorder for Recording {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

impl Recording {
    /// Waits (up to 10 s) until gauge `name` of `label` has been set to 0.
    pub async fn until_zero(&self, name: &str, label: (&str, &str)) {
        for _ in 0..400 {
            if self.sets(name, Some(label)).contains(&0.0) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("{name} never reached 0: {:?}", self.sets(name, Some(label)));
    }
}

/// The lag gauges of a consumer that read five aged events in batches of
/// two ([`five_aged_events`](crate::five_aged_events)): 3 then 1 behind with
/// an age, then caught up (0 and 0) for good.
pub fn assert_lag_history(events: &[f64], seconds: &[f64]) {
    assert!(
        events.len() >= 3 && events.len() == seconds.len(),
        "{events:?} {seconds:?}"
    );
    assert_eq!(events[..3], [3.0, 1.0, 0.0], "{events:?}");
    assert!(events[3..].iter().all(|v| *v == 0.0), "{events:?}");
    assert!(
        seconds[..2].iter().all(|s| *s > 0.0 && *s < 60.0),
        "{seconds:?}"
    );
    assert!(seconds[2..].iter().all(|s| *s == 0.0), "{seconds:?}");
}
