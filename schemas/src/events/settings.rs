//! Events on `im.user.<userID>.command` and `im.user.<userID>.config` (and the app-wide
//! `im.user.=.config`): a user's commands and client configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// `user.command.set` v1: a command added or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCommandSet {
    /// The user.
    pub user_id: String,
    /// The command type (app-defined).
    pub command_type: i32,
    /// The command's ID within the type.
    pub uuid: String,
    /// Its value.
    pub value: String,
    /// Extension data.
    pub ex: String,
    /// When it was first added, milliseconds since the epoch.
    pub create_time: i64,
}

impl Event for UserCommandSet {
    const KIND: &'static str = "user.command.set";
    const VERSION: u32 = 1;
}

/// `user.command.deleted` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCommandDeleted {
    /// The user.
    pub user_id: String,
    /// The command type.
    pub command_type: i32,
    /// The command's ID within the type.
    pub uuid: String,
}

impl Event for UserCommandDeleted {
    const KIND: &'static str = "user.command.deleted";
    const VERSION: u32 = 1;
}

/// `config.set` v1: client configuration entries set for a user, or for everyone when
/// `user_id` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfigSet {
    /// The user, or empty for the app-wide entries.
    pub user_id: String,
    /// Key → value.
    pub configs: BTreeMap<String, String>,
}

impl Event for ClientConfigSet {
    const KIND: &'static str = "config.set";
    const VERSION: u32 = 1;
}

/// `config.deleted` v1: client configuration keys removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfigDeleted {
    /// The user, or empty for the app-wide entries.
    pub user_id: String,
    /// The keys removed.
    pub keys: Vec<String>,
}

impl Event for ClientConfigDeleted {
    const KIND: &'static str = "config.deleted";
    const VERSION: u32 = 1;
}
