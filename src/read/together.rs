//! Decisions read together: concurrent [`read_boundary`](crate::EventStore::read_boundary)
//! calls on one [`Store`](crate::Store) share one statement
//! (`dcbstore.read_pages` with every request waiting) and one round trip, as
//! concurrent appends share one transaction, so that a statement's cost is
//! paid once per batch. Each caller still gets its own boundary, as of the
//! one snapshot of the statement: the first page of its events up to the
//! shared head, then (rarely) further pages of its own, bounded by that head.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::sql::ReadSql;
use super::stream::Page;
use crate::error::{Error, PgResultExt, Result};
use crate::metrics::BOUNDARY_READS_TOGETHER;
use crate::pooled::Pooled;

/// At most this many boundary reads share one statement.
const MAX_TOGETHER: usize = 64;

/// Reads join a statement while its terms (tags and types of every query)
/// stay under this, so that wide queries (the limits allow queries of a
/// million terms) are never multiplied into one statement; a read wider than
/// this alone goes alone.
const MAX_TERMS: usize = 4096;

/// One boundary read's first page: its query and window (exclusive lower
/// bound, inclusive upper bound, most events), and where to answer.
struct Ask {
    sql: Arc<ReadSql>,
    terms: usize,
    window: [i64; 3],
    reply: oneshot::Sender<Result<Page>>,
}

/// The tasks that read first pages together; cloning shares them.
#[derive(Clone, Debug)]
pub(crate) struct Readers {
    tx: mpsc::Sender<Ask>,
}

impl Readers {
    /// Starts `tasks` readers (each one statement at a time) on the current
    /// tokio runtime.
    pub(crate) fn spawn(pooled: Pooled, tasks: usize) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(Queue { rx, carried: None }));
        for _ in 0..tasks.max(1) {
            tokio::spawn(run(pooled.clone(), rx.clone()));
        }
        Readers { tx }
    }

    /// The first page of a forwards read of `sql` in `window`, read together
    /// with the others waiting.
    pub(super) async fn first_page(&self, sql: Arc<ReadSql>, window: [i64; 3]) -> Result<Page> {
        let (reply, rx) = oneshot::channel();
        let terms = sql.terms();
        self.tx
            .send(Ask {
                sql,
                terms,
                window,
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

/// The reads waiting, shared by the reader tasks, and the one that did not
/// fit the last statement (it starts the next).
struct Queue {
    rx: mpsc::Receiver<Ask>,
    carried: Option<Ask>,
}

impl Queue {
    /// Everything waiting, up to the caps: one statement for them all.
    /// `None` once the store is dropped.
    async fn next_batch(&mut self) -> Option<Vec<Ask>> {
        let first = match self.carried.take() {
            Some(ask) => ask,
            None => self.rx.recv().await?,
        };
        let mut terms = first.terms;
        let mut asks = vec![first];
        while asks.len() < MAX_TOGETHER {
            let Ok(ask) = self.rx.try_recv() else {
                break;
            };
            if terms + ask.terms > MAX_TERMS {
                self.carried = Some(ask);
                break;
            }
            terms += ask.terms;
            asks.push(ask);
        }
        Some(asks)
    }
}

async fn run(pooled: Pooled, queue: Arc<Mutex<Queue>>) {
    loop {
        let Some(asks) = queue.lock().await.next_batch().await else {
            return;
        };
        ::metrics::histogram!(BOUNDARY_READS_TOGETHER).record(asks.len() as f64);
        match read_together(&pooled, &asks).await {
            Ok((head, mut rows)) => {
                for (ask, rows) in asks.into_iter().zip(rows.drain(..)) {
                    let _ = ask.reply.send(Ok(Page { head, rows }));
                }
            }
            Err(e) => {
                for ask in asks {
                    let _ = ask.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The head, and each ask's rows (the rows' last column is the request's
/// number, from 1; the head's row has 0).
async fn read_together(
    pooled: &Pooled,
    asks: &[Ask],
) -> Result<(u64, Vec<Vec<tokio_postgres::Row>>)> {
    let requests: Vec<(&ReadSql, [i64; 3])> = asks.iter().map(|a| (&*a.sql, a.window)).collect();
    let call = Arc::new(ReadSql::call(&requests));
    let n = asks.len();
    pooled
        .read("reading boundaries", |c| {
            let call = call.clone();
            Box::pin(async move {
                let rows = call.query(c).await?;
                let mut head = None;
                let mut split: Vec<Vec<tokio_postgres::Row>> = (0..n).map(|_| Vec::new()).collect();
                for row in rows {
                    let request: i32 = row.try_get(8).db()?;
                    match usize::try_from(request).ok().and_then(|r| r.checked_sub(1)) {
                        None => head = row.try_get::<_, Option<i64>>(0).db()?,
                        Some(r) => match split.get_mut(r) {
                            Some(rows) => rows.push(row),
                            None => {
                                return Err(Error::decode(
                                    "a read page answered a request it was not asked",
                                ))
                            }
                        },
                    }
                }
                let head = head.ok_or_else(|| Error::decode("a read page carried no head"))?;
                Ok((u64::try_from(head).unwrap_or(0), split))
            })
        })
        .await
}
