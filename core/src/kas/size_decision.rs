//! Which way a client mail goes (A_19355-01, A_19357-02): up to 15 MiB through the Konnektor
//! as in KOM-LE 1.0, above that whole and encrypted onto the sender's KAS; above the account's
//! `maxMailSize` (getLimits, A_22416) not at all (X.3.4).

use super::account_limits::AccountLimits;
use super::error::KasSendError;

/// The Konnektor's limit for signing and encrypting a client mail (A_19357-02): 15 MiB.
pub const KONNEKTOR_LIMIT: u64 = 15 * 1024 * 1024;

/// The route of one client mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendRoute {
    /// KOM-LE 1.0: the Konnektor signs and encrypts the whole mail.
    Konnektor,
    /// KOM-LE 1.5: encrypt, `add_Attachment`, send the KIM-Attachment structure.
    Kas,
}

/// Decides the route for a client mail of `size` bytes (the DATA content as received, after
/// dot-unstuffing). `limits` are the sender account's (None while getLimits is unknown: then
/// only the 15 MiB rule applies and the KAS enforces its own limit with 413).
///
/// # Errors
/// [`KasSendError::TooLarge`] above `maxMailSize` (A_19355-01).
pub fn route(size: u64, limits: Option<&AccountLimits>) -> Result<SendRoute, KasSendError> {
    if let Some(max) = limits.and_then(|l| l.max_mail_size)
        && size > max
    {
        return Err(KasSendError::TooLarge { size, max });
    }
    Ok(if size > KONNEKTOR_LIMIT {
        SendRoute::Kas
    } else {
        SendRoute::Konnektor
    })
}

/// Whether the SMTP proxy may still stream DATA towards the Konnektor path after `seen` bytes:
/// once past [`KONNEKTOR_LIMIT`] the route is the KAS one. Lets the DATA pipeline switch to
/// the streaming encryptor without buffering the whole mail first.
pub fn exceeds_konnektor_limit(seen: u64) -> bool {
    seen > KONNEKTOR_LIMIT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u64) -> AccountLimits {
        AccountLimits {
            max_mail_size: Some(max),
            ..AccountLimits::default()
        }
    }

    #[test]
    fn a_19357_fifteen_mib_goes_the_konnektor_way_one_byte_more_the_kas_way() {
        assert_eq!(route(KONNEKTOR_LIMIT, None), Ok(SendRoute::Konnektor));
        assert_eq!(route(KONNEKTOR_LIMIT + 1, None), Ok(SendRoute::Kas));
        assert_eq!(route(14 * 1024 * 1024, None), Ok(SendRoute::Konnektor));
        assert_eq!(
            route(100_000_000, Some(&limits(734_003_200))),
            Ok(SendRoute::Kas)
        );
        assert!(!exceeds_konnektor_limit(KONNEKTOR_LIMIT));
        assert!(exceeds_konnektor_limit(KONNEKTOR_LIMIT + 1));
    }

    #[test]
    fn a_19355_over_max_mail_size_is_rejected_with_x_3_4() {
        let err = route(734_003_201, Some(&limits(734_003_200))).expect_err("too large");
        assert_eq!(
            err,
            KasSendError::TooLarge {
                size: 734_003_201,
                max: 734_003_200
            }
        );
        assert!(err.reply().starts_with(b"552 5.3.4"));
        assert_eq!(
            route(734_003_200, Some(&limits(734_003_200))),
            Ok(SendRoute::Kas)
        );
    }
}
