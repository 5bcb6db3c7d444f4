//! The account's limits from the account manager's `getLimits` (A_22416, AccountLimit.yaml),
//! parsed from its JSON and cached for at most 24 hours per account.

use serde::Deserialize;

/// How long a getLimits answer may be reused (A_22416: "24 Stunden zwischenspeichern").
pub const CACHE_SECONDS: i64 = 24 * 60 * 60;

/// The members of `AccountLimit` the Clientmodul uses. `-1` for the quotas means unlimited
/// (AccountLimit 1.1.4) and is kept as `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountLimits {
    /// Days the mail and the KAS data live (A_22417 `Expires` = send time + this).
    pub data_time_to_live_days: Option<u32>,
    pub max_mail_size: Option<u64>,
    pub quota: Option<u64>,
    pub remain_quota: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    data_time_to_live: Option<i64>,
    max_mail_size: Option<i64>,
    quota: Option<i64>,
    remain_quota: Option<i64>,
}

/// The getLimits body is not an `AccountLimit` object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAccountLimits;

impl std::fmt::Display for BadAccountLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("getLimits: not an AccountLimit object")
    }
}

impl std::error::Error for BadAccountLimits {}

impl AccountLimits {
    /// Parses a getLimits 200 body; values outside the yaml's ranges are rejected.
    ///
    /// # Errors
    /// [`BadAccountLimits`] for anything that is not the schema's object.
    pub fn from_json(body: &[u8]) -> Result<Self, BadAccountLimits> {
        let w: Wire = serde_json::from_slice(body).map_err(|_| BadAccountLimits)?;
        let ttl = match w.data_time_to_live {
            None => None,
            Some(d) if (1..=3650).contains(&d) => u32::try_from(d).ok(),
            Some(_) => return Err(BadAccountLimits),
        };
        let positive = |v: Option<i64>| -> Result<Option<u64>, BadAccountLimits> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) if n >= 0 => Ok(Some(n as u64)),
                Some(_) => Err(BadAccountLimits),
            }
        };
        Ok(Self {
            data_time_to_live_days: ttl,
            max_mail_size: match w.max_mail_size {
                Some(n) if n > 0 => Some(n as u64),
                None => None,
                Some(_) => return Err(BadAccountLimits),
            },
            quota: positive(w.quota)?,
            remain_quota: positive(w.remain_quota)?,
        })
    }
}

/// `dataTimeToLive` when getLimits did not say (AccountLimit.yaml default: 90 days).
pub const DEFAULT_TTL_DAYS: u32 = 90;

/// The expiry date of a message sent at `now` (Unix seconds, TI time): now + dataTimeToLive,
/// RFC 5322. Goes into the outer `Expires` header (A_22417) and the `expires` form field of
/// `add_Attachment`, so mail and KAS data expire together.
pub fn expires(now: i64, limits: Option<&AccountLimits>) -> String {
    let days = limits
        .and_then(|l| l.data_time_to_live_days)
        .unwrap_or(DEFAULT_TTL_DAYS);
    crate::smime::date::rfc5322(now.saturating_add(i64::from(days) * 86_400))
}

/// One account's limits with the time they were fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedLimits {
    pub limits: AccountLimits,
    pub fetched_at: i64,
}

impl CachedLimits {
    /// Whether the entry may still be used at `now` (Unix seconds, TI time).
    pub fn is_fresh(&self, now: i64) -> bool {
        now >= self.fetched_at && now - self.fetched_at < CACHE_SECONDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_22416_get_limits_example_parses_and_minus_one_is_unlimited() {
        let body = br#"{"dataTimeToLive":90,"maxMailSize":734003200,"quota":-1,"remainQuota":112000000000}"#;
        let l = AccountLimits::from_json(body).expect("parses");
        assert_eq!(l.data_time_to_live_days, Some(90));
        assert_eq!(l.max_mail_size, Some(734_003_200));
        assert_eq!(l.quota, None);
        assert_eq!(l.remain_quota, Some(112_000_000_000));
        assert_eq!(
            AccountLimits::from_json(b"{}"),
            Ok(AccountLimits::default())
        );
        assert_eq!(
            AccountLimits::from_json(br#"{"quota":-2}"#),
            Err(BadAccountLimits)
        );
        assert_eq!(
            AccountLimits::from_json(br#"{"maxMailSize":"big"}"#),
            Err(BadAccountLimits)
        );
        assert_eq!(AccountLimits::from_json(b"nope"), Err(BadAccountLimits));
    }

    #[test]
    fn a_22417_expires_is_send_time_plus_data_time_to_live() {
        let ten = AccountLimits {
            data_time_to_live_days: Some(10),
            ..AccountLimits::default()
        };
        // 2022-09-09 13:47:00 UTC + 10 days.
        assert_eq!(
            expires(1_662_731_220, Some(&ten)),
            crate::smime::date::rfc5322(1_662_731_220 + 10 * 86_400)
        );
        assert!(expires(1_662_731_220, Some(&ten)).contains("19 Sep 2022"));
        assert!(
            expires(1_662_731_220, None).contains("8 Dec 2022"),
            "90 days default"
        );
    }

    #[test]
    fn a_22416_cache_entry_expires_after_24_hours() {
        let c = CachedLimits {
            limits: AccountLimits::default(),
            fetched_at: 1_000,
        };
        assert!(c.is_fresh(1_000));
        assert!(c.is_fresh(1_000 + CACHE_SECONDS - 1));
        assert!(!c.is_fresh(1_000 + CACHE_SECONDS));
        assert!(
            !c.is_fresh(999),
            "a clock going back does not extend the entry"
        );
    }
}
