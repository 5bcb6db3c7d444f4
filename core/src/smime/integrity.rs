//! The integrity check of a received message (KOM-LE-A_2048) and its result codes (A_2050).
//!
//! Inputs: the Konnektor's VerifyDocument answer (as [`Verification`], defined here so this
//! module does not depend on the SOAP layer), the signed-data facts, the unprotected
//! recipient-emails and the outer and inner headers.

use super::addresses;
use super::headers;
use super::recipient_emails::{RecipientEmail, same_recipients};
use super::signed_data::SignedDataInfo;

/// VerifyDocument's overall result (gemSpec_Kon `VerificationResult/HighLevelResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyResult {
    /// Signature and certificate valid.
    Valid,
    /// Signature or certificate invalid.
    Invalid,
    /// Could not be decided (e.g. revocation status unavailable).
    Inconclusive,
}

/// What the Konnektor's VerifyDocument said, as the caller extracts it from the SOAP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Overall result.
    pub result: VerifyResult,
    /// Signer's name (certificate subject CN / organisation).
    pub signer_name: String,
    /// Signer's Telematik-ID (Admission extension), when known.
    pub telematik_id: Option<String>,
    /// Signing time as reported, human-readable.
    pub signing_time: Option<String>,
    /// Konnektor error code (e.g. 4115, 4253, 4112, 4206), when the result is not VALID.
    pub error_code: Option<u32>,
    /// Konnektor error text (no message content), when any.
    pub error_text: Option<String>,
}

/// `X-KIM-IntegrityCheckResult` values (KOM-LE-A_2050, NOTES.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheckResult {
    /// 01: signature valid.
    Valid,
    /// 02: integrity violated (Konnektor 4115).
    IntegrityViolated,
    /// 03: no signature (4253).
    NoSignature,
    /// 04: wrong format (4112, or a profile violation found here).
    WrongFormat,
    /// 05: certificate path invalid (4206).
    CertificatePathInvalid,
    /// 06: other Konnektor error.
    KonnektorError,
    /// 07: valid, but the certificate status could not be checked (4264 / INCONCLUSIVE).
    ValidStatusUnknown,
    /// 08: outer and inner addressing headers differ.
    HeadersDiffer,
    /// 09: signed and unprotected recipient-emails differ.
    RecipientEmailsDiffer,
}

impl IntegrityCheckResult {
    /// The two-digit header value.
    pub fn code(self) -> &'static str {
        match self {
            Self::Valid => "01",
            Self::IntegrityViolated => "02",
            Self::NoSignature => "03",
            Self::WrongFormat => "04",
            Self::CertificatePathInvalid => "05",
            Self::KonnektorError => "06",
            Self::ValidStatusUnknown => "07",
            Self::HeadersDiffer => "08",
            Self::RecipientEmailsDiffer => "09",
        }
    }

    /// True when the mail may be delivered without a security warning.
    pub fn is_ok(self) -> bool {
        matches!(self, Self::Valid | Self::ValidStatusUnknown)
    }

    /// German text for the note (A_2050).
    pub fn text(self) -> &'static str {
        match self {
            Self::Valid => "Die Signatur wurde erfolgreich geprüft.",
            Self::IntegrityViolated => "Die Integrität der Nachricht ist verletzt.",
            Self::NoSignature => "Die Nachricht ist nicht signiert.",
            Self::WrongFormat => "Die Nachricht hat ein ungültiges Format.",
            Self::CertificatePathInvalid => {
                "Der Zertifikatspfad des Signaturzertifikats ist ungültig."
            }
            Self::KonnektorError => {
                "Die Signatur konnte wegen eines Konnektorfehlers nicht geprüft werden."
            }
            Self::ValidStatusUnknown => {
                "Die Signatur ist gültig, der Zertifikatsstatus konnte aber nicht geprüft werden."
            }
            Self::HeadersDiffer => {
                "Die Absender- oder Empfängerangaben der Nachricht wurden nach dem Signieren verändert."
            }
            Self::RecipientEmailsDiffer => {
                "Die signierte Empfängerliste weicht von der unverschlüsselten ab."
            }
        }
    }

    /// Maps VerifyDocument's answer.
    pub fn from_verification(v: &Verification) -> Self {
        match (v.result, v.error_code) {
            (VerifyResult::Valid, _) => Self::Valid,
            (VerifyResult::Inconclusive, _) | (_, Some(4264)) => Self::ValidStatusUnknown,
            (_, Some(4115)) => Self::IntegrityViolated,
            (_, Some(4253)) => Self::NoSignature,
            (_, Some(4112)) => Self::WrongFormat,
            (_, Some(4206)) => Self::CertificatePathInvalid,
            _ => Self::KonnektorError,
        }
    }
}

/// Addressing fields compared between outer and inner message (A_2048).
pub const COMPARED_FIELDS: [&str; 5] = ["From", "Sender", "Reply-To", "To", "Cc"];

/// The fields (by name) whose address sets differ between `outer` and `inner`.
pub fn differing_headers(outer: &[u8], inner: &[u8]) -> Vec<&'static str> {
    let (Ok(oh), Ok(ih)) = (headers::parse(outer), headers::parse(inner)) else {
        return COMPARED_FIELDS.to_vec();
    };
    COMPARED_FIELDS
        .into_iter()
        .filter(|name| {
            let mut a = addresses::field_addresses(outer, &oh, name);
            let mut b = addresses::field_addresses(inner, &ih, name);
            a.sort();
            b.sort();
            a.dedup();
            b.dedup();
            a != b
        })
        .collect()
}

/// KOM-LE-A_2048: Konnektor verdict first, then the profile, the recipient-emails and the headers.
pub fn check(
    verification: &Verification,
    signed: &SignedDataInfo<'_>,
    unprotected: Option<&[RecipientEmail]>,
    outer: &[u8],
    inner: &[u8],
) -> IntegrityCheckResult {
    let konnektor = IntegrityCheckResult::from_verification(verification);
    if !konnektor.is_ok() {
        return konnektor;
    }
    if signed.check_profile().is_err() {
        return IntegrityCheckResult::WrongFormat;
    }
    let signed_rcpts = signed.recipient_emails.as_deref().unwrap_or(&[]);
    if !unprotected.is_some_and(|u| same_recipients(signed_rcpts, u)) {
        return IntegrityCheckResult::RecipientEmailsDiffer;
    }
    if !differing_headers(outer, inner).is_empty() {
        return IntegrityCheckResult::HeadersDiffer;
    }
    konnektor
}
