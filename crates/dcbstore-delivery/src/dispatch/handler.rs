//! The [`Handler`] trait, its object-safe form, and the typed in-process
//! subscriber behind [`Dispatcher::subscribe`](super::Dispatcher::subscribe).

use std::future::Future;
use std::pin::Pin;

use super::envelope::{EmitContext, Envelope};
use dcbstore::schema::EventDefinition;
use dcbstore::HandlerError;

/// A handler of envelopes at the levels it was registered for.
pub trait Handler: Send + Sync + 'static {
    /// Handles one envelope.
    fn handle(
        &self,
        envelope: &Envelope,
        context: &EmitContext,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether this handler records envelopes in the log (the level-5
    /// [`SourcedHandler`](super::SourcedHandler) does): levels 3 and 4 are
    /// delivered from the log, so they need one.
    fn records(&self) -> bool {
        false
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub(super) trait ErasedHandler: Send + Sync {
    fn handle<'a>(
        &'a self,
        envelope: &'a Envelope,
        context: &'a EmitContext,
    ) -> BoxFut<'a, Result<(), HandlerError>>;

    fn records(&self) -> bool;
}

impl<H: Handler> ErasedHandler for H {
    fn handle<'a>(
        &'a self,
        envelope: &'a Envelope,
        context: &'a EmitContext,
    ) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(Handler::handle(self, envelope, context))
    }

    fn records(&self) -> bool {
        Handler::records(self)
    }
}

pub(super) struct Subscriber<E, F> {
    pub(super) f: F,
    pub(super) _event: std::marker::PhantomData<fn(&E)>,
}

impl<E, F> Handler for Subscriber<E, F>
where
    E: EventDefinition,
    F: Fn(&E, &Envelope) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    async fn handle(
        &self,
        envelope: &Envelope,
        _context: &EmitContext,
    ) -> Result<(), HandlerError> {
        if envelope.name != E::NAME {
            return Ok(());
        }
        let payload = dcbstore::typed::upcast::<E>(envelope.version, envelope.payload.clone())?;
        let event: E = serde_json::from_value(payload)?;
        (self.f)(&event, envelope)
    }
}
