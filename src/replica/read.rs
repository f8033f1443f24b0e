//! A read on the server its routing chose: decided when the stream is
//! first polled, then every page of it on that server.

use std::sync::Arc;

use futures::stream::{self, BoxStream};
use futures::StreamExt;

use super::route::{Replicas, Route};
use crate::error::Result;
use crate::limits::Limits;
use crate::pooled::Pooled;
use crate::query::Query;
use crate::read::{read_stream, Decode, ReadOptions};

/// `read_stream` on a replica that holds what the read must see (its
/// window's upper bound, its commit token), else on `primary`.
pub(crate) fn routed_read<T: Decode>(
    primary: Pooled,
    replicas: Option<Arc<Replicas>>,
    query: &Query,
    limits: &Limits,
    options: ReadOptions,
    page_size: u64,
) -> BoxStream<'static, Result<T>> {
    let Some(replicas) = replicas else {
        return read_stream(primary, query, limits, options, page_size).boxed();
    };
    let (query, limits) = (query.clone(), *limits);
    stream::once(async move {
        let pooled = match replicas
            .route(&primary, options.token(), options.upper())
            .await
        {
            Route::Replica(p) => p,
            Route::Primary => primary,
        };
        read_stream(pooled, &query, &limits, options, page_size)
    })
    .flatten()
    .boxed()
}
