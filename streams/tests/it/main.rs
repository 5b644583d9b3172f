//! Integration tests for the event log, each against its own nats-server.

mod append;
mod consume;
mod definitions;
mod kv;
mod support;
