//! A directory entry as the runtime hands it in after the LDAP search.

use super::query::{ATTR_KOM_LE_DATA, ATTR_MAIL, ATTR_USER_CERTIFICATE};

/// The parts of one VZD entry the Clientmodul uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub dn: String,
    pub mail: Vec<String>,
    /// DER certificates from `userCertificate;binary` (or `userCertificate`), unparsed: bad ones
    /// are skipped with a reason by [`super::inspect()`], never here.
    pub certificates: Vec<Vec<u8>>,
    pub kom_le_data: Vec<String>,
}

impl DirectoryEntry {
    /// Builds an entry from raw attributes (name, values) as an LDAP client returns them.
    ///
    /// Attribute names compare case-insensitively (LDAP attribute descriptions do); the
    /// certificate attribute is accepted with and without the `;binary` option, other options
    /// are ignored. Text attributes that are not UTF-8 are dropped rather than failing the entry.
    pub fn from_attributes<'a, I, V>(dn: &str, attributes: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, V)>,
        V: IntoIterator<Item = Vec<u8>>,
    {
        let mut entry = DirectoryEntry {
            dn: dn.to_owned(),
            ..Default::default()
        };
        for (name, values) in attributes {
            let base = name.split(';').next().unwrap_or(name);
            if base.eq_ignore_ascii_case(ATTR_USER_CERTIFICATE) {
                entry.certificates.extend(values);
            } else if base.eq_ignore_ascii_case(ATTR_MAIL) {
                entry
                    .mail
                    .extend(values.into_iter().filter_map(|v| String::from_utf8(v).ok()));
            } else if base.eq_ignore_ascii_case(ATTR_KOM_LE_DATA) {
                entry
                    .kom_le_data
                    .extend(values.into_iter().filter_map(|v| String::from_utf8(v).ok()));
            }
        }
        entry
    }
}
