//! The directory lookup for one e-mail address, as data (KOM-LE-A_2023).

/// LDAP attribute holding the certificates; requested with the `;binary` transfer option
/// because that is how the VZD (and RFC 4523) deliver certificates.
pub const ATTR_USER_CERTIFICATE_BINARY: &str = "userCertificate;binary";
/// The same attribute without the transfer option; some servers answer with this name.
pub const ATTR_USER_CERTIFICATE: &str = "userCertificate";
/// KIM-specific attribute (`<version>,<address>`) naming the KIM version of an address.
pub const ATTR_KOM_LE_DATA: &str = "komLeData";
/// LDAP attribute holding e-mail addresses.
pub const ATTR_MAIL: &str = "mail";

/// One LDAP search: subtree below `base_dn`, with `filter`, returning `attributes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryQuery {
    pub base_dn: String,
    pub filter: String,
    pub attributes: Vec<String>,
}

impl DirectoryQuery {
    /// The search for the encryption certificates of `address` (KOM-LE-A_2023).
    ///
    /// The address is escaped per RFC 4515, so an address containing `*`, `(` or `)` matches
    /// only itself and can never widen the search to other people's entries.
    pub fn for_address(base_dn: &str, address: &str) -> Self {
        DirectoryQuery {
            base_dn: base_dn.to_owned(),
            filter: format!("({ATTR_MAIL}={})", escape_filter_value(address)),
            attributes: vec![
                ATTR_MAIL.to_owned(),
                ATTR_USER_CERTIFICATE_BINARY.to_owned(),
                ATTR_KOM_LE_DATA.to_owned(),
            ],
        }
    }
}

/// Escapes an assertion value for an LDAP string filter (RFC 4515 section 3).
///
/// `*`, `(`, `)`, `\` and NUL must be escaped; every non-ASCII byte (of the UTF-8 encoding) and
/// every other control character is escaped too, so the filter is plain printable ASCII.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => push_hex(&mut out, b),
            0x20..=0x7e => out.push(char::from(b)),
            _ => push_hex(&mut out, b),
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}
