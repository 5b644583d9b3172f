//! jetim's event types, one module per area. Every type names its kind and version; a change
//! to a stored shape adds a version and keeps reading the old ones.

pub mod conversation;
pub mod group;
pub mod msg;
pub mod relation;
pub mod settings;
pub mod user;
