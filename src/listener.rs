//! The store's one listening connection: `LISTEN dcbstore_events` on a
//! dedicated connection, shared by every subscription and projection runner
//! of a [`Store`](crate::Store), turned into coalescing wake-ups.
//!
//! A notification only says "the log may have grown": whoever wakes reads
//! the log after the last position it delivered, so a lost or late
//! notification delays an event and never loses it. That is why the channel
//! is a [`watch`] (a counter, not a queue): a follower that is busy while a
//! thousand batches commit wakes once, and no memory grows meanwhile.
//!
//! The connection is opened when the first follower asks for wake-ups and
//! closed when the last one is gone. When it is lost it is opened again with
//! backoff; meanwhile followers poll. Each time it (re)starts listening it
//! wakes everyone, because appends committed before `LISTEN` took effect
//! were not notified to it.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Config};

use crate::tls::TlsSettings;

/// The channel the store's writer notifies after each batch commits.
pub(crate) const CHANNEL: &str = "dcbstore_events";

/// Where a store's listening connection goes, and the one that is open (if
/// any follower is left).
#[derive(Debug)]
pub(crate) struct Listener {
    config: Config,
    tls: TlsSettings,
    shared: Mutex<Weak<Shared>>,
}

/// The running listener: the task that owns the connection, and the
/// wake-up counter it bumps. Aborted (the connection closed) when the last
/// [`Wakeups`] is dropped.
#[derive(Debug)]
struct Shared {
    rx: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One follower's view of the wake-ups. Cloning it shares the connection.
#[derive(Debug, Clone)]
pub(crate) struct Wakeups {
    _shared: Arc<Shared>,
    rx: watch::Receiver<u64>,
}

impl Listener {
    pub(crate) fn new(config: Config, tls: TlsSettings) -> Listener {
        Listener {
            config,
            tls,
            shared: Mutex::new(Weak::new()),
        }
    }

    /// Wake-ups from the store's listening connection, opening it if no
    /// follower has it open. Must run inside a tokio runtime.
    pub(crate) fn wakeups(&self) -> Wakeups {
        // A poisoned lock only means another follower panicked while holding
        // it; the Weak inside is still valid.
        let mut slot = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(shared) = slot.upgrade() {
            let rx = shared.rx.clone();
            return Wakeups {
                _shared: shared,
                rx,
            };
        }
        let (tx, rx) = watch::channel(0u64);
        let task = tokio::spawn(listen(self.config.clone(), self.tls.clone(), tx));
        let shared = Arc::new(Shared {
            rx: rx.clone(),
            task,
        });
        *slot = Arc::downgrade(&shared);
        Wakeups {
            _shared: shared,
            rx,
        }
    }

    /// Whether a listening connection is wanted now (some follower holds
    /// wake-ups). For tests and status.
    pub(crate) fn is_open(&self) -> bool {
        self.shared
            .lock()
            .map(|s| s.strong_count() > 0)
            .unwrap_or(false)
    }
}

impl Wakeups {
    /// Takes every wake-up so far as seen. Call it *before* reading the log
    /// up to the head: a wake-up that arrives during the read then ends the
    /// next [`wait`](Self::wait) at once, so no append between the read's
    /// snapshot and the wait is slept through.
    pub(crate) fn mark(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Waits for a wake-up after the last [`mark`](Self::mark), or for
    /// `poll` to pass (the fallback for appends that notify nobody, such as
    /// [`append_in`](crate::append::append_in), and for a lost connection).
    pub(crate) async fn wait(&mut self, poll: Duration) {
        let _ = tokio::time::timeout(poll, async {
            if self.rx.changed().await.is_err() {
                // The listener is gone (cannot happen while we hold it):
                // poll.
                std::future::pending::<()>().await;
            }
        })
        .await;
    }
}

/// Keeps a connection listening and bumps `tx` on each notification, and
/// each time listening (re)starts; reconnects with backoff, forever (until
/// aborted).
async fn listen(config: Config, tls: TlsSettings, tx: watch::Sender<u64>) {
    let delays = || {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut backoff = delays();
    loop {
        match crate::connection::open(&config, &tls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures::stream::poll_fn(move |cx| connection.poll_message(cx)).fuse();
                let listening = async { client.batch_execute(&format!("LISTEN {CHANNEL}")).await };
                // The connection must be driven while LISTEN runs.
                let listened = drive_until(&mut messages, &tx, listening).await;
                match listened {
                    Some(Ok(())) => {
                        backoff = delays();
                        tracing::debug!("listening for appends");
                        // Appends committed before LISTEN took effect were
                        // not notified to us: wake everyone to read.
                        tx.send_modify(|n| *n = n.wrapping_add(1));
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(AsyncMessage::Notification(_)) => {
                                    tx.send_modify(|n| *n = n.wrapping_add(1));
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "the connection listening for appends failed; followers poll until it is back");
                                    break;
                                }
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "cannot LISTEN for appends; followers poll meanwhile");
                    }
                    None => {
                        tracing::warn!("the connection listening for appends closed; followers poll until it is back");
                    }
                }
                drop(client);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the connection that listens for appends; followers poll meanwhile");
            }
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(10));
        tokio::time::sleep(delay).await;
    }
}

/// Drives the connection's messages until `work` finishes (`None`: the
/// connection ended first). Notifications meanwhile still wake.
async fn drive_until<S, F, T>(messages: &mut S, tx: &watch::Sender<u64>, work: F) -> Option<T>
where
    S: futures::Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Unpin,
    F: std::future::Future<Output = T>,
{
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakeups_share_one_listener_and_the_last_drop_closes_it() {
        // Unreachable server: the task retries in the background; what is
        // checked here is the sharing, not the connection.
        let mut config = Config::new();
        config.host("127.0.0.1").port(1).user("nobody");
        let listener = Listener::new(config, TlsSettings::default());
        assert!(!listener.is_open());
        let a = listener.wakeups();
        let b = listener.wakeups();
        assert!(
            Arc::ptr_eq(&a._shared, &b._shared),
            "one listener per store"
        );
        drop(a);
        assert!(listener.is_open());
        drop(b);
        assert!(!listener.is_open(), "the last follower's drop closes it");
        let c = listener.wakeups();
        assert!(listener.is_open(), "a new follower opens it again");
        drop(c);
    }
}
