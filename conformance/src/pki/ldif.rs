//! LDIF (RFC 2849) of the test directory, and the schema for `komLeData`.
//!
//! `komLeData` is not in OpenLDAP's standard schemas and gematik publishes the VZD schema only
//! as documentation, so we ship a minimal test schema: the attribute (directory string) and an
//! auxiliary object class allowing it. The OIDs are under 2.25 (UUID-derived, no registration
//! needed) and are used by the test directory only; the Clientmodul itself just asks for the
//! attribute by name and copes with its absence.

use base64::Engine;

use super::Person;

/// Base DN of the VZD.
pub const VZD_BASE_DN: &str = "dc=data,dc=vzd";

/// slapd.conf-format schema defining `komLeData` and the auxiliary class `komLeDirectoryEntry`.
pub const KOM_LE_SCHEMA: &str = "\
attributetype ( 2.25.291716513148186374466135547394432071281.1 NAME 'komLeData'
  DESC 'KIM version and address, <version>,<address> (test schema)'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 2.25.291716513148186374466135547394432071281.2 NAME 'komLeDirectoryEntry'
  SUP top AUXILIARY MAY komLeData )
";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One attribute line; values that are not SAFE-STRING (RFC 2849) are written base64.
fn line(out: &mut String, attr: &str, value: &str) {
    let safe_start = !value.starts_with([' ', ':', '<']);
    let safe =
        safe_start && !value.ends_with(' ') && value.bytes().all(|b| (0x20..0x7f).contains(&b));
    if safe {
        out.push_str(&format!("{attr}: {value}\n"));
    } else {
        out.push_str(&format!("{attr}:: {}\n", b64(value.as_bytes())));
    }
}

pub(crate) fn ldif(persons: &[&Person], with_kom_le_data: bool) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "dn: {VZD_BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: data\no: VZD test\n\n"
    ));
    for p in persons {
        out.push_str(&format!("dn: uid={},{VZD_BASE_DN}\n", p.uid));
        out.push_str("objectClass: inetOrgPerson\n");
        if with_kom_le_data && p.kom_le_data.is_some() {
            out.push_str("objectClass: komLeDirectoryEntry\n");
        }
        line(&mut out, "uid", &p.uid);
        line(&mut out, "cn", &format!("Praxis {}", p.uid));
        line(&mut out, "sn", &p.uid);
        line(&mut out, "mail", &p.address);
        for c in &p.enc {
            out.push_str(&format!("userCertificate;binary:: {}\n", b64(&c.cert_der)));
        }
        if with_kom_le_data && let Some(d) = &p.kom_le_data {
            line(&mut out, "komLeData", d);
        }
        out.push('\n');
    }
    out
}
