//! The API service started as `jetim` starts it, on port 0, against private servers, with the
//! projector running beside it.

mod auth;
mod conversation;
mod friend;
mod group;
mod health;
mod jssdk;
mod msg;
mod settings;
mod status;
mod support;
mod transport;
mod user;
