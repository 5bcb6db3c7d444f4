//! The KOM-LE version of an address from the VZD attribute `komLeData` (gemSpec_CM_KOMLE
//! V1.16: A_19356-06, A_21387-01; gemSpec_VZD).
//!
//! `komLeData` values have the form `<version>,<address>` (e.g. `1.5+,praxis@kim.telematik`):
//! one per KIM address of the entry. Valid versions are `1.0` and `1.5`; from 1.5 on a `+`
//! says the address receives large (KAS) messages. An address without a value counts as 1.0
//! (A_19356-06: „Ist das LDAP-Directory Attribut: komLeData für den Empfänger undefiniert,
//! dann muss ein KOM-LE-Clientmodul mit einer Version 1.0 angenommen werden“).

use core::fmt;

use super::DirectoryEntry;

/// A KOM-LE version as the directory states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KomLeVersion {
    pub major: u8,
    pub minor: u8,
    /// The `+` of `1.5+`: large messages through the KAS are accepted (A_19356-06).
    pub large_messages: bool,
}

impl KomLeVersion {
    /// KOM-LE 1.0, also the version of an address without `komLeData`.
    pub const V1_0: KomLeVersion = KomLeVersion {
        major: 1,
        minor: 0,
        large_messages: false,
    };
    /// KOM-LE 1.5, the version this Clientmodul implements.
    pub const V1_5: KomLeVersion = KomLeVersion {
        major: 1,
        minor: 5,
        large_messages: false,
    };

    /// Parses `1.0`, `1.5`, `1.5+` (surrounding spaces ignored); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (s, large_messages) = match s.strip_suffix('+') {
            Some(v) => (v, true),
            None => (s, false),
        };
        let (major, minor) = s.split_once('.')?;
        let all_digits =
            |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(major) || !all_digits(minor) {
            return None;
        }
        Some(KomLeVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
            large_messages,
        })
    }

    /// Whether the version is at least `other` (the `+` is not compared).
    pub fn at_least(&self, other: KomLeVersion) -> bool {
        (self.major, self.minor) >= (other.major, other.minor)
    }
}

impl fmt::Display for KomLeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if self.large_messages {
            f.write_str("+")?;
        }
        Ok(())
    }
}

/// The KOM-LE version the directory states for `address` (A_19356-06): the `komLeData` value
/// naming the address (case-insensitive), or a value without an address part. Several entries
/// for one address: the lowest version, so nobody gets a message their module cannot read.
/// None at all: 1.0.
pub fn for_address(entries: &[DirectoryEntry], address: &str) -> KomLeVersion {
    entries
        .iter()
        .filter_map(|e| {
            e.kom_le_data.iter().find_map(|value| {
                let (version, named) = match value.split_once(',') {
                    Some((v, a)) => (v, Some(a.trim())),
                    None => (value.as_str(), None),
                };
                match named {
                    Some(a) if !a.eq_ignore_ascii_case(address) => None,
                    _ => KomLeVersion::parse(version),
                }
            })
        })
        .min_by_key(|v| (v.major, v.minor, v.large_messages))
        .unwrap_or(KomLeVersion::V1_0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(values: &[&str]) -> DirectoryEntry {
        DirectoryEntry {
            kom_le_data: values.iter().map(|v| (*v).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_19356_06_versions_parse_with_and_without_plus() {
        assert_eq!(KomLeVersion::parse("1.0"), Some(KomLeVersion::V1_0));
        assert_eq!(KomLeVersion::parse(" 1.5 "), Some(KomLeVersion::V1_5));
        let plus = KomLeVersion::parse("1.5+").unwrap();
        assert!(plus.large_messages && plus.at_least(KomLeVersion::V1_5));
        assert_eq!(plus.to_string(), "1.5+");
        for bad in ["", "1", "1.", ".5", "a.b", "1.5++", "1.5.0", "-1.5"] {
            assert_eq!(KomLeVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_19356_06_version_of_an_address_comes_from_its_own_value() {
        let e = entry(&["1.5+,praxis@kim.test", "1.0,arzt@kim.test"]);
        assert_eq!(
            for_address(std::slice::from_ref(&e), "Praxis@KIM.test").to_string(),
            "1.5+"
        );
        assert_eq!(
            for_address(std::slice::from_ref(&e), "arzt@kim.test"),
            KomLeVersion::V1_0
        );
        assert_eq!(
            for_address(&[entry(&["1.5"])], "x@kim.test"),
            KomLeVersion::V1_5
        );
    }

    #[test]
    fn a_19356_06_undefined_or_unreadable_is_1_0_and_several_entries_give_the_lowest() {
        assert_eq!(for_address(&[], "x@kim.test"), KomLeVersion::V1_0);
        assert_eq!(for_address(&[entry(&[])], "x@kim.test"), KomLeVersion::V1_0);
        assert_eq!(
            for_address(&[entry(&["kaputt,x@kim.test"])], "x@kim.test"),
            KomLeVersion::V1_0
        );
        assert_eq!(
            for_address(&[entry(&["1.0,other@kim.test"])], "x@kim.test"),
            KomLeVersion::V1_0
        );
        let two = [entry(&["1.5+,x@kim.test"]), entry(&["1.0,x@kim.test"])];
        assert_eq!(for_address(&two, "x@kim.test"), KomLeVersion::V1_0);
    }
}
