//! Humane durations for the configuration file: `"500ms"`, `"30s"`, `"5m"`, `"12h"`, `"1d"`,
//! and sums like `"1h30m"`.
//!
//! A bare number is rejected on purpose: whether `timeout = "60"` means seconds or milliseconds
//! is exactly the kind of guess that makes a daemon misbehave quietly.

use std::fmt;
use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DurationError {}

/// Parses `<number><unit>` repeated; units `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = |why: &str| {
        DurationError(format!(
            "{text:?} is not a duration ({why}; write e.g. \"30s\", \"5m\", \"12h\", \"1h30m\")"
        ))
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(|| bad("too large"))?),
            "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(|| bad("too large"))?),
            "d" => Duration::from_secs(number.checked_mul(86_400).ok_or_else(|| bad("too large"))?),
            "" => return Err(bad("missing unit")),
            _ => return Err(bad("unknown unit")),
        };
        total = total.checked_add(part).ok_or_else(|| bad("too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" 1h30m "), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn rejects_ambiguous_or_malformed() {
        for bad in [
            "",
            "60",
            "5 m",
            "m5",
            "5x",
            "-5s",
            "1.5h",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_duration("60")
                .unwrap_err()
                .to_string()
                .contains("missing unit")
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(parse_duration("18446744073709551615d").is_err());
        assert!(parse_duration("18446744073709551615s18446744073709551615s").is_err());
    }
}
