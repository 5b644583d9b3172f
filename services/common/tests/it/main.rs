//! Integration tests for the shared crate, against a real Postgres.

mod migrations;
