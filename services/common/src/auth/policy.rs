//! A user's token table and OpenIM's multi-login policies, as pure functions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::platform::{Platform, PlatformClass};

/// The state of one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    /// Valid.
    Normal,
    /// Refused as unknown (1505).
    Invalid,
    /// Refused as kicked (1506).
    Kicked,
}

/// One token in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Its state.
    pub state: TokenState,
    /// When it was issued (seconds since the epoch).
    pub issued: i64,
    /// When it expires (seconds since the epoch).
    pub expires: i64,
}

/// What a login does to the user's other tokens (OpenIM's `multiLogin.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginPolicy {
    /// 0: kick only the oldest tokens of a platform past the per-platform cap.
    NoKick,
    /// 1: a login kicks every other token of the same platform, and all but one on each
    /// other platform.
    KickSamePlatform,
    /// 4: a login kicks every token of the same platform class, and all but one in each other
    /// class.
    KickSameClass,
    /// 5: PC logins coexist with one other device; any other login kicks every non-PC token.
    PcAndOne,
}

impl LoginPolicy {
    /// Parses OpenIM's policy number.
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            0 => Some(Self::NoKick),
            1 => Some(Self::KickSamePlatform),
            4 => Some(Self::KickSameClass),
            5 => Some(Self::PcAndOne),
            _ => None,
        }
    }
}

impl LoginPolicy {
    /// Whether a new connection on `new` replaces (kicks) a live connection on `old` with a
    /// different token. A reconnect with the same token never replaces anything.
    pub fn replaces(self, new: Platform, old: Platform) -> bool {
        match self {
            Self::NoKick => false,
            Self::KickSamePlatform => new == old,
            Self::KickSameClass => new.class() == old.class(),
            Self::PcAndOne => new.class() != PlatformClass::Pc && old.class() != PlatformClass::Pc,
        }
    }
}

/// How long an admin's superseded admin token stays valid (OpenIM: 5 minutes).
const SUPERSEDED_ADMIN_TOKEN_SECONDS: i64 = 300;

/// Every live token of one user, by platform ID and token fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTable {
    /// Platform ID → fingerprint → entry.
    pub platforms: BTreeMap<i32, BTreeMap<String, TokenEntry>>,
}

impl TokenTable {
    /// The state of a token, if the table knows it.
    pub fn state_of(&self, platform_id: i32, fingerprint: &str, now: i64) -> Option<TokenState> {
        let entry = self.platforms.get(&platform_id)?.get(fingerprint)?;
        (entry.expires > now).then_some(entry.state)
    }

    /// Marks every normal token of a platform kicked; returns how many.
    pub fn kick_platform(&mut self, platform_id: i32) -> usize {
        let mut kicked = 0;
        for entry in self.platforms.entry(platform_id).or_default().values_mut() {
            if entry.state == TokenState::Normal {
                entry.state = TokenState::Kicked;
                kicked += 1;
            }
        }
        kicked
    }

    /// Marks one token kicked, if it is known and normal.
    pub fn kick_token(&mut self, platform_id: i32, fingerprint: &str) {
        if let Some(entry) = self
            .platforms
            .get_mut(&platform_id)
            .and_then(|entries| entries.get_mut(fingerprint))
            && entry.state == TokenState::Normal
        {
            entry.state = TokenState::Kicked;
        }
    }

    /// Adds a newly issued token, first forgetting expired and refused tokens (as OpenIM does
    /// at issue time), then kicking what the policy says.
    pub fn admit(
        &mut self,
        platform: Platform,
        fingerprint: &str,
        expires: i64,
        policy: LoginPolicy,
        max_per_platform: usize,
        now: i64,
    ) {
        for entries in self.platforms.values_mut() {
            entries.retain(|_, entry| entry.state == TokenState::Normal && entry.expires > now);
        }
        self.platforms.retain(|_, entries| !entries.is_empty());

        if platform == Platform::ADMIN {
            for entry in self
                .platforms
                .entry(platform.id())
                .or_default()
                .values_mut()
            {
                entry.expires = entry.expires.min(now + SUPERSEDED_ADMIN_TOKEN_SECONDS);
            }
        } else {
            self.apply_policy(platform, policy, max_per_platform);
        }
        self.platforms.entry(platform.id()).or_default().insert(
            fingerprint.to_owned(),
            TokenEntry {
                state: TokenState::Normal,
                issued: now,
                expires,
            },
        );
    }

    fn apply_policy(&mut self, platform: Platform, policy: LoginPolicy, max_per_platform: usize) {
        let others = |table: &Self| -> Vec<Platform> {
            table
                .platforms
                .keys()
                .filter_map(|id| Platform::from_id(*id))
                .filter(|other| *other != platform && *other != Platform::ADMIN)
                .collect()
        };
        match policy {
            LoginPolicy::NoKick => {
                let keep = max_per_platform.saturating_sub(1);
                self.kick_all_but_newest(&[platform], keep);
            }
            LoginPolicy::KickSamePlatform => {
                self.kick_all_but_newest(&[platform], 0);
                for other in others(self) {
                    self.kick_all_but_newest(&[other], 1);
                }
            }
            LoginPolicy::KickSameClass => {
                let class = platform.class();
                let mut by_class: BTreeMap<String, Vec<Platform>> = BTreeMap::new();
                for other in others(self) {
                    by_class
                        .entry(format!("{:?}", other.class()))
                        .or_default()
                        .push(other);
                }
                for (other_class, platforms) in by_class {
                    let keep = usize::from(other_class != format!("{class:?}"));
                    self.kick_all_but_newest(&platforms, keep);
                }
                self.kick_all_but_newest(&[platform], 0);
            }
            LoginPolicy::PcAndOne => {
                let non_pc: Vec<Platform> = others(self)
                    .into_iter()
                    .filter(|other| other.class() != PlatformClass::Pc)
                    .collect();
                if platform.class() == PlatformClass::Pc {
                    // Keep one non-PC device, an Android one if there is one.
                    let mut ordered = non_pc;
                    ordered.sort_by_key(|other| *other != Platform::ANDROID);
                    self.kick_all_but_first(&ordered);
                } else {
                    self.kick_all_but_newest(&non_pc, 0);
                    self.kick_all_but_newest(&[platform], 0);
                }
            }
        }
    }

    /// Kicks every normal token on `platforms` except the `keep` newest.
    fn kick_all_but_newest(&mut self, platforms: &[Platform], keep: usize) {
        let mut normal: Vec<(i64, i32, String)> = platforms
            .iter()
            .flat_map(|platform| {
                self.platforms
                    .get(&platform.id())
                    .into_iter()
                    .flatten()
                    .filter(|(_, entry)| entry.state == TokenState::Normal)
                    .map(|(fingerprint, entry)| (entry.issued, platform.id(), fingerprint.clone()))
            })
            .collect();
        normal.sort();
        let kick = normal.len().saturating_sub(keep);
        for (_, platform_id, fingerprint) in normal.into_iter().take(kick) {
            if let Some(entry) = self
                .platforms
                .get_mut(&platform_id)
                .and_then(|entries| entries.get_mut(&fingerprint))
            {
                entry.state = TokenState::Kicked;
            }
        }
    }

    /// Keeps the newest token of the first platform in `ordered` that has one; kicks the rest.
    fn kick_all_but_first(&mut self, ordered: &[Platform]) {
        let keeper = ordered.iter().position(|platform| {
            self.platforms.get(&platform.id()).is_some_and(|entries| {
                entries
                    .values()
                    .any(|entry| entry.state == TokenState::Normal)
            })
        });
        for (index, platform) in ordered.iter().enumerate() {
            let keep = usize::from(Some(index) == keeper);
            self.kick_all_but_newest(&[*platform], keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;
    const LATER: i64 = NOW + 86_400;

    fn platform(id: i32) -> Platform {
        Platform::from_id(id).unwrap()
    }

    #[test]
    fn connections_replaced_by_a_new_one() {
        use LoginPolicy::*;
        let (ios, android, windows, web, ipad) = (
            platform(1),
            platform(2),
            platform(3),
            platform(5),
            platform(9),
        );
        assert!(!NoKick.replaces(ios, ios));
        assert!(KickSamePlatform.replaces(ios, ios));
        assert!(!KickSamePlatform.replaces(ios, android));
        assert!(KickSameClass.replaces(ios, android));
        assert!(!KickSameClass.replaces(ios, ipad));
        assert!(!KickSameClass.replaces(windows, web));
        assert!(!PcAndOne.replaces(windows, ios));
        assert!(PcAndOne.replaces(ios, android));
        assert!(!PcAndOne.replaces(ios, windows));
    }

    /// Logs in on each (platform, token) in order, one second apart.
    fn logins(policy: LoginPolicy, sequence: &[(i32, &str)]) -> TokenTable {
        let mut table = TokenTable::default();
        for (offset, (id, token)) in sequence.iter().enumerate() {
            table.admit(platform(*id), token, LATER, policy, 30, NOW + offset as i64);
        }
        table
    }

    fn state(table: &TokenTable, id: i32, token: &str) -> Option<TokenState> {
        table.state_of(id, token, NOW + 100)
    }

    #[test]
    fn policy_1_kicks_the_same_platform_and_all_but_one_elsewhere() {
        let table = logins(
            LoginPolicy::KickSamePlatform,
            &[(5, "web1"), (1, "ios1"), (1, "ios2"), (5, "web2")],
        );
        assert_eq!(state(&table, 5, "web2"), Some(TokenState::Normal));
        assert_eq!(state(&table, 5, "web1"), Some(TokenState::Kicked));
        assert_eq!(state(&table, 1, "ios2"), Some(TokenState::Normal));
        // Kicked by the ios2 login, forgotten at the next issue (as OpenIM does).
        assert_eq!(state(&table, 1, "ios1"), None);

        let table = logins(LoginPolicy::KickSamePlatform, &[(5, "web1"), (5, "web2")]);
        assert_eq!(state(&table, 5, "web1"), Some(TokenState::Kicked));
    }

    #[test]
    fn policy_0_kicks_only_past_the_cap() {
        let mut table = TokenTable::default();
        for (offset, token) in ["a", "b", "c"].iter().enumerate() {
            table.admit(
                platform(5),
                token,
                LATER,
                LoginPolicy::NoKick,
                2,
                NOW + offset as i64,
            );
        }
        assert_eq!(state(&table, 5, "a"), Some(TokenState::Kicked));
        assert_eq!(state(&table, 5, "b"), Some(TokenState::Normal));
        assert_eq!(state(&table, 5, "c"), Some(TokenState::Normal));
        let table = logins(LoginPolicy::NoKick, &[(5, "a"), (5, "b"), (1, "c")]);
        assert!(
            ["a", "b"]
                .iter()
                .all(|t| state(&table, 5, t) == Some(TokenState::Normal))
        );
    }

    #[test]
    fn policy_4_kicks_the_whole_class() {
        // Windows (3) and Linux (7) are both PC.
        let table = logins(
            LoginPolicy::KickSameClass,
            &[(3, "win"), (1, "ios"), (7, "linux")],
        );
        assert_eq!(state(&table, 3, "win"), Some(TokenState::Kicked));
        assert_eq!(state(&table, 1, "ios"), Some(TokenState::Normal));
        assert_eq!(state(&table, 7, "linux"), Some(TokenState::Normal));
    }

    #[test]
    fn policy_5_lets_pcs_coexist_with_one_other_device() {
        let table = logins(
            LoginPolicy::PcAndOne,
            &[(1, "ios"), (2, "android"), (3, "win")],
        );
        // The Android login kicked iOS (forgotten by the next issue); the PC login keeps Android.
        assert_eq!(state(&table, 1, "ios"), None);
        assert_eq!(state(&table, 2, "android"), Some(TokenState::Normal));
        assert_eq!(state(&table, 3, "win"), Some(TokenState::Normal));
        let table = logins(LoginPolicy::PcAndOne, &[(3, "win"), (5, "web")]);
        assert_eq!(state(&table, 3, "win"), Some(TokenState::Normal));
    }

    #[test]
    fn a_new_admin_token_leaves_the_old_one_valid_for_five_minutes() {
        let table = logins(LoginPolicy::KickSamePlatform, &[(10, "old"), (10, "new")]);
        assert_eq!(
            table.state_of(10, "old", NOW + 200),
            Some(TokenState::Normal)
        );
        assert_eq!(table.state_of(10, "old", NOW + 400), None);
        assert_eq!(
            table.state_of(10, "new", NOW + 400),
            Some(TokenState::Normal)
        );
    }

    #[test]
    fn admin_tokens_are_exempt_from_user_policies() {
        let table = logins(LoginPolicy::KickSamePlatform, &[(10, "admin"), (5, "web")]);
        assert_eq!(state(&table, 10, "admin"), Some(TokenState::Normal));
    }

    #[test]
    fn force_logout_kicks_a_platform_and_expired_tokens_are_unknown() {
        let mut table = logins(LoginPolicy::NoKick, &[(5, "a"), (1, "b")]);
        assert_eq!(table.kick_platform(5), 1);
        assert_eq!(state(&table, 5, "a"), Some(TokenState::Kicked));
        assert_eq!(state(&table, 1, "b"), Some(TokenState::Normal));
        assert_eq!(table.state_of(1, "b", LATER + 1), None);
    }

    #[test]
    fn policy_numbers_are_openims() {
        assert_eq!(
            LoginPolicy::from_number(1),
            Some(LoginPolicy::KickSamePlatform)
        );
        assert_eq!(LoginPolicy::from_number(2), None);
    }
}
