//! The integration tests of `dcbstore-delivery`: one binary, a module per
//! part (dispatch, durable delivery, the broker transports, their metrics).
//! Each test gets its own database (and its own nats-server), so they run
//! in parallel.

mod delivery;
mod delivery_broker;
mod dispatch;
mod metrics;
