//! The X.509 extensions of TI certificates that the test PKI writes.

use der::asn1::{Ia5String, OctetString, PrintableString};
use der::{Encode, Sequence};
use spki::ObjectIdentifier;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, CertificatePolicies, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};

use super::PkiError;

pub(crate) const ADMISSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.8.3.3");
/// professionOID for "Betriebsstätte Arzt" (gemSpec_OID), used on every test ENC certificate.
const PROFESSION_OID_ARZTPRAXIS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.276.0.76.4.50");

#[derive(Sequence)]
struct ProfessionInfo {
    profession_items: Vec<String>,
    profession_oids: Vec<ObjectIdentifier>,
    registration_number: PrintableString,
}

#[derive(Sequence)]
struct Admissions {
    profession_infos: Vec<ProfessionInfo>,
}

#[derive(Sequence)]
struct AdmissionSyntax {
    contents_of_admissions: Vec<Admissions>,
}

fn ext(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension, PkiError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Admission (OID 1.3.36.8.3.3) carrying `telematik_id` as registrationNumber (gemSpec_PKI).
pub(crate) fn admission(telematik_id: &str) -> Result<Extension, PkiError> {
    let value = AdmissionSyntax {
        contents_of_admissions: vec![Admissions {
            profession_infos: vec![ProfessionInfo {
                profession_items: vec!["Arztpraxis".to_owned()],
                profession_oids: vec![PROFESSION_OID_ARZTPRAXIS],
                registration_number: PrintableString::new(telematik_id)?,
            }],
        }],
    };
    ext(ADMISSION, false, &value)
}

pub(crate) fn key_usage(
    flags: impl Into<der::flagset::FlagSet<KeyUsages>>,
) -> Result<Extension, PkiError> {
    ext(
        const_oid::db::rfc5280::ID_CE_KEY_USAGE,
        true,
        &KeyUsage(flags.into()),
    )
}

pub(crate) fn policies(oids: &[ObjectIdentifier]) -> Result<Extension, PkiError> {
    let value = CertificatePolicies(
        oids.iter()
            .map(|o| PolicyInformation {
                policy_identifier: *o,
                policy_qualifiers: None,
            })
            .collect(),
    );
    ext(
        const_oid::db::rfc5280::ID_CE_CERTIFICATE_POLICIES,
        false,
        &value,
    )
}

pub(crate) fn email_san(addresses: &[&str]) -> Result<Extension, PkiError> {
    let names = addresses
        .iter()
        .map(|a| Ok(GeneralName::Rfc822Name(Ia5String::new(a)?)))
        .collect::<Result<Vec<_>, der::Error>>()?;
    ext(
        const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
        false,
        &SubjectAltName(names),
    )
}

pub(crate) fn server_san(dns: &str, ipv4: [u8; 4]) -> Result<Extension, PkiError> {
    let names = vec![
        GeneralName::DnsName(Ia5String::new(dns)?),
        GeneralName::IpAddress(OctetString::new(ipv4.to_vec())?),
    ];
    ext(
        const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
        false,
        &SubjectAltName(names),
    )
}

pub(crate) fn server_auth() -> Result<Extension, PkiError> {
    ext(
        const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
        false,
        &ExtendedKeyUsage(vec![const_oid::db::rfc5280::ID_KP_SERVER_AUTH]),
    )
}

/// Extended key usage id-kp-clientAuth: a TLS client certificate (C.CM.TLS-CS).
pub(crate) fn client_auth() -> Result<Extension, PkiError> {
    ext(
        const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
        false,
        &ExtendedKeyUsage(vec![const_oid::db::rfc5280::ID_KP_CLIENT_AUTH]),
    )
}

pub(crate) fn basic_constraints(ca: bool) -> Result<Extension, PkiError> {
    ext(
        const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
        true,
        &BasicConstraints {
            ca,
            path_len_constraint: None,
        },
    )
}
