//! OpenIM platform IDs.

/// A valid OpenIM platform (1..=11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform(i32);

/// The class a login policy groups platforms in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformClass {
    /// Windows, macOS, Linux.
    Pc,
    /// iOS, Android.
    Mobile,
    /// Android pad, iPad.
    Pad,
    /// Every other platform is a class of its own.
    Own(i32),
}

impl Platform {
    /// iOS.
    pub const IOS: Self = Self(1);
    /// Android.
    pub const ANDROID: Self = Self(2);
    /// Web.
    pub const WEB: Self = Self(5);
    /// The admin platform: admin tokens are issued for it.
    pub const ADMIN: Self = Self(10);

    /// Parses a platform ID; `None` outside 1..=11.
    pub fn from_id(id: i32) -> Option<Self> {
        (1..=11).contains(&id).then_some(Self(id))
    }

    /// The numeric ID.
    pub const fn id(self) -> i32 {
        self.0
    }

    /// OpenIM's name for the platform.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "IOS",
            2 => "Android",
            3 => "Windows",
            4 => "OSX",
            5 => "Web",
            6 => "MiniWebApp",
            7 => "Linux",
            8 => "APad",
            9 => "IPad",
            10 => "Admin",
            _ => "HarmonyOS",
        }
    }

    /// The class used by login policies 4 and 5.
    pub const fn class(self) -> PlatformClass {
        match self.0 {
            3 | 4 | 7 => PlatformClass::Pc,
            1 | 2 => PlatformClass::Mobile,
            8 | 9 => PlatformClass::Pad,
            other => PlatformClass::Own(other),
        }
    }
}
