//! The integrity check of a received message (KOM-LE-A_2048) and its result codes
//! (Tab_Verm_Sig_Prüf, KOM-LE-A_2050-05, A_23165).
//!
//! Inputs: the Konnektor's VerifyDocument answer (as [`Verification`], defined here so this
//! module does not depend on the SOAP layer), the signed-data facts, the unprotected
//! recipient-emails and the outer and inner headers.
//!
//! WHY the mapping reads more than `HighLevelResult`: a Konnektor reports why a signature is
//! not valid in two places, as a warning in `CONN:Status` or only in the verification report
//! (`SigMathOK`, `ResultMinor`, a gematik code in `ResultMessage`) with `Status` OK. Mapping
//! every INCONCLUSIVE to 07 made a self-made certificate carrying a practice's name look like
//! a valid sender; the table gives 07 only for 4264.

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
    /// Could not be decided (e.g. revocation status unavailable, unknown issuer).
    Inconclusive,
}

/// Why VerifyDocument gave no verdict at all (errors outside Tab_Verm_Sig_Prüf, A_23165).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoVerdict {
    /// The Konnektor could not be reached or did not answer in time.
    Unreachable,
    /// The Konnektor answered, but neither with a readable result nor with a gematik code.
    Unreadable,
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
    /// Konnektor error code (e.g. 4115, 4253, 4112, 4206, 4264), from the `Status` warning, a
    /// SOAP fault or the verification report's `ResultMessage`.
    pub error_code: Option<u32>,
    /// Konnektor error text (no message content), when any.
    pub error_text: Option<String>,
    /// The verification report marks the signature itself invalid (`SigMathOK` invalid or
    /// `ResultMinor` IncorrectSignature), whatever `Status` says.
    pub signature_broken: bool,
    /// The verification report marks the certificate path invalid (`PathValiditySummary`).
    pub path_invalid: bool,
    /// Set when there is no verdict from the Konnektor at all.
    pub no_verdict: Option<NoVerdict>,
}

impl Verification {
    /// A verification without a Konnektor verdict (the other fields say "unknown").
    pub fn without_verdict(why: NoVerdict, text: String) -> Self {
        Verification {
            result: VerifyResult::Invalid,
            signer_name: "unbekannt".to_owned(),
            telematik_id: None,
            signing_time: None,
            error_code: None,
            error_text: Some(text),
            signature_broken: false,
            path_invalid: false,
            no_verdict: Some(why),
        }
    }
}

/// `X-KIM-IntegrityCheckResult` values: Tab_Verm_Sig_Prüf (gemSpec_CM_KOMLE 1.16 Tabelle 7)
/// plus the vendor codes starting with `X` that A_23165 requires for errors outside the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheckResult {
    /// 01: signature valid.
    Valid,
    /// 02: integrity violated (Konnektor 4115, or the report marks the signature invalid).
    IntegrityViolated,
    /// 03: no signature (4253).
    NoSignature,
    /// 04: wrong format (4112, or a profile violation found here).
    WrongFormat,
    /// 05: certificate path invalid (4206, or the report marks the path invalid).
    CertificatePathInvalid,
    /// 06: a Konnektor verdict whose error code the table does not assign.
    KonnektorError,
    /// 07: valid, but the certificate status could not be checked (4264 only).
    ValidStatusUnknown,
    /// 08: outer and inner addressing headers differ.
    HeadersDiffer,
    /// 09: signed and unprotected recipient-emails differ.
    RecipientEmailsDiffer,
    /// `X01`: VerifyDocument could not be called (Konnektor unreachable, no answer).
    KonnektorUnreachable,
    /// `X02`: VerifyDocument's answer was neither a result nor a gematik error.
    KonnektorAnswerUnreadable,
}

/// Every value the module can write, in table order (for docs and exhaustive tests).
pub const ALL_RESULTS: [IntegrityCheckResult; 11] = [
    IntegrityCheckResult::Valid,
    IntegrityCheckResult::IntegrityViolated,
    IntegrityCheckResult::NoSignature,
    IntegrityCheckResult::WrongFormat,
    IntegrityCheckResult::CertificatePathInvalid,
    IntegrityCheckResult::KonnektorError,
    IntegrityCheckResult::ValidStatusUnknown,
    IntegrityCheckResult::HeadersDiffer,
    IntegrityCheckResult::RecipientEmailsDiffer,
    IntegrityCheckResult::KonnektorUnreachable,
    IntegrityCheckResult::KonnektorAnswerUnreadable,
];

impl IntegrityCheckResult {
    /// The header value.
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
            Self::KonnektorUnreachable => "X01",
            Self::KonnektorAnswerUnreadable => "X02",
        }
    }

    /// True when the table's Prüfergebnis is `true` (01 and 07): the mail is delivered with the
    /// Vermerk appended (A_2050-05); every other value is a failed check (A_23165).
    pub fn is_ok(self) -> bool {
        matches!(self, Self::Valid | Self::ValidStatusUnknown)
    }

    /// The table's "Ergebnis" column (the vendor codes: our own wording).
    pub fn text(self) -> &'static str {
        match self {
            Self::Valid => "Die Signatur der Nachricht wurde erfolgreich geprüft.",
            Self::IntegrityViolated => "Die Integrität der Nachricht wurde verletzt.",
            Self::NoSignature => "Die digitale Signatur ist nicht vorhanden.",
            Self::WrongFormat => {
                "Die digitale Signatur konnte aufgrund des falschen Formats nicht geprüft werden."
            }
            Self::CertificatePathInvalid => {
                "Der Zertifizierungspfad des Signaturzertifikats kann nicht validiert werden."
            }
            Self::KonnektorError => {
                "Die digitale Signatur konnte aufgrund eines nicht zuordenbaren Fehlercodes des Konnektors nicht geprüft werden."
            }
            Self::ValidStatusUnknown => {
                "Die digitale Signatur ist mathematisch korrekt, der Zertifikatsstatus des Signaturzertifikats konnte aber nicht geprüft werden."
            }
            Self::HeadersDiffer => {
                "Die digitale Signatur ist mathematisch korrekt und der Zertifikatsstatus des Signaturzertifikats konnte erfolgreich geprüft werden, aber beim Vergleich der Header-Elemente from, sender, reply-to, to und cc der äußeren Nachricht mit denen der inneren Nachricht wurden Abweichungen festgestellt."
            }
            Self::RecipientEmailsDiffer => {
                "Die digitale Signatur ist mathematisch korrekt und der Zertifikatsstatus des Signaturzertifikats konnte erfolgreich geprüft werden, aber das recipient-emails-Attribut aus signerInfos enthält nicht die gleichen Werte wie das recipient-emails-Attribut aus dem enveloped-data CMS-Objekt."
            }
            Self::KonnektorUnreachable => {
                "Die digitale Signatur konnte nicht geprüft werden, weil der Konnektor nicht erreichbar war."
            }
            Self::KonnektorAnswerUnreadable => {
                "Die digitale Signatur konnte nicht geprüft werden, weil die Antwort des Konnektors nicht auswertbar war."
            }
        }
    }

    /// The table's "Vermerk" appended to the message text (A_2050-05): only for a `true`
    /// result, and the same for 01 and 07.
    pub fn vermerk(self) -> Option<&'static str> {
        self.is_ok()
            .then_some("Die Signatur wurde erfolgreich geprüft.")
    }

    /// Maps VerifyDocument's answer (Tab_Verm_Sig_Prüf). A broken signature in the report wins
    /// over any code; 07 needs code 4264 and neither a broken signature nor a broken path; a
    /// verdict the table cannot place is 06; no verdict at all is a vendor code.
    pub fn from_verification(v: &Verification) -> Self {
        if let Some(why) = v.no_verdict {
            return match why {
                NoVerdict::Unreachable => Self::KonnektorUnreachable,
                NoVerdict::Unreadable => Self::KonnektorAnswerUnreadable,
            };
        }
        if v.signature_broken {
            return Self::IntegrityViolated;
        }
        match v.error_code {
            Some(4115) => Self::IntegrityViolated,
            Some(4253) => Self::NoSignature,
            Some(4112) => Self::WrongFormat,
            Some(4206) => Self::CertificatePathInvalid,
            Some(4264) if v.path_invalid => Self::CertificatePathInvalid,
            Some(4264) if v.result != VerifyResult::Invalid => Self::ValidStatusUnknown,
            Some(_) => Self::KonnektorError,
            None if v.path_invalid => Self::CertificatePathInvalid,
            None if v.result == VerifyResult::Valid => Self::Valid,
            None => Self::KonnektorError,
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
