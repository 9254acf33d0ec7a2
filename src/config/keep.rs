//! The keep policy: which snapshots `forget` keeps. One struct for both the `--keep-*` flags
//! and `[retention]` in `kfguard.toml`, so the rules are defined once.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct KeepPolicy {
    /// Keep the last N snapshots
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep the last snapshot of each of the last N days
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// Keep the last snapshot of each of the last N weeks
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Keep the last snapshot of each of the last N months
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Keep the last snapshot of each of the last N years
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
}

impl KeepPolicy {
    fn values(&self) -> [Option<u32>; 5] {
        [
            self.keep_last,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
    }

    /// No rule given at all.
    pub fn is_empty(&self) -> bool {
        self.values().iter().all(Option::is_none)
    }

    /// Every rule is absent or 0: the policy would delete every snapshot.
    pub fn keeps_nothing(&self) -> bool {
        self.values().iter().all(|v| v.unwrap_or(0) == 0)
    }

    /// The policy as rustic_core's keep options.
    pub fn keep_options(&self) -> rustic_core::KeepOptions {
        let to_i32 = |v: Option<u32>| v.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        rustic_core::KeepOptions::default()
            .keep_last(to_i32(self.keep_last))
            .keep_daily(to_i32(self.keep_daily))
            .keep_weekly(to_i32(self.keep_weekly))
            .keep_monthly(to_i32(self.keep_monthly))
            .keep_yearly(to_i32(self.keep_yearly))
    }
}
