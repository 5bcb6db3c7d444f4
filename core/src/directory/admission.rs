//! The Telematik-ID from the Admission extension (OID 1.3.36.8.3.3, gemSpec_PKI).
//!
//! ```text
//! AdmissionSyntax ::= SEQUENCE { admissionAuthority GeneralName OPTIONAL,
//!                                contentsOfAdmissions SEQUENCE OF Admissions }
//! Admissions ::= SEQUENCE { admissionAuthority [0] EXPLICIT GeneralName OPTIONAL,
//!                           namingAuthority [1] EXPLICIT NamingAuthority OPTIONAL,
//!                           professionInfos SEQUENCE OF ProfessionInfo }
//! ProfessionInfo ::= SEQUENCE { namingAuthority [0] EXPLICIT NamingAuthority OPTIONAL,
//!                               professionItems SEQUENCE OF DirectoryString,
//!                               professionOIDs SEQUENCE OF OBJECT IDENTIFIER OPTIONAL,
//!                               registrationNumber PrintableString OPTIONAL,
//!                               addProfessionInfo OCTET STRING OPTIONAL }
//! ```
//! Walked generically (every optional field before the wanted one is context-tagged or has a
//! distinct universal tag), so unknown GeneralName choices cannot break the parse.

use der::asn1::AnyRef;
use der::{Decode, Tag, Tagged};

/// Returns the first registrationNumber (the Telematik-ID), `Ok(None)` when the structure is
/// well-formed but carries none, `Err` when the extension value is not valid DER.
pub(crate) fn telematik_id(extension_value: &[u8]) -> Result<Option<String>, der::Error> {
    let syntax: Vec<AnyRef<'_>> = Vec::from_der(extension_value)?;
    let Some(contents) = first_sequence(&syntax) else {
        return Ok(None);
    };
    let admissions: Vec<AnyRef<'_>> = contents.decode_as()?;
    for admission in admissions {
        let fields: Vec<AnyRef<'_>> = admission.decode_as()?;
        let Some(infos) = first_sequence(&fields) else {
            continue;
        };
        let infos: Vec<AnyRef<'_>> = infos.decode_as()?;
        for info in infos {
            let fields: Vec<AnyRef<'_>> = info.decode_as()?;
            for field in fields {
                if matches!(field.tag(), Tag::PrintableString | Tag::Utf8String) {
                    let text = std::str::from_utf8(field.value())?;
                    return Ok(Some(text.to_owned()));
                }
            }
        }
    }
    Ok(None)
}

fn first_sequence<'a>(items: &[AnyRef<'a>]) -> Option<AnyRef<'a>> {
    items.iter().copied().find(|i| i.tag() == Tag::Sequence)
}
