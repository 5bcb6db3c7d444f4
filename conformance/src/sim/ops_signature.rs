//! SignatureService: GetJobNumber, SignDocument (CMS, KOM-LE-A_2190) and VerifyDocument.

use super::error::SimError;
use super::ops_cards::require_signing_card;
use super::sign::{SignInput, sign_document as cms_sign};
use super::simulator::{Simulator, b64, b64_encode, required};
use super::soap_out::{
    NS_CONN, NS_DS, NS_DSS, NS_SIG_PREFIX, NS_VR, service_ns, status_ok, xs_date_time,
};
use super::verify::{
    ChainStatus, HighLevel, VerifyOutcome, VerifyPolicy, verify_document as cms_verify,
};
use super::xml::{Element, escape};

fn sig_ns(sim: &Simulator) -> String {
    service_ns(NS_SIG_PREFIX, &sim.config().versions.signature)
}

/// GetJobNumber: `SIM-000`, `SIM-001`, …
pub fn get_job_number(sim: &Simulator, _req: &Element) -> Result<String, SimError> {
    Ok(format!(
        "<SIG:GetJobNumberResponse xmlns:SIG=\"{}\"><SIG:JobNumber>{}</SIG:JobNumber>\
</SIG:GetJobNumberResponse>",
        sig_ns(sim),
        sim.next_job_number()
    ))
}

/// SignDocument: one CMS SignedData per SignRequest, with the CMSAttribute(s) from
/// `OptionalInputs/dss:Properties/dss:SignedProperties/dss:Property/dss:Value` as signed
/// attributes (KOM-LE-A_2190). JobNumber is mandatory (gemSpec_Kon TAB_KON_065).
pub fn sign_document(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let ns = sig_ns(sim);
    let handle = req
        .child_ns_prefix("http://ws.gematik.de/conn/ConnectorCommon/", "CardHandle")
        .ok_or_else(|| SimError::BadRequest("CardHandle missing".into()))?
        .text();
    if req.child(&ns, "JobNumber").is_none() {
        return Err(SimError::BadRequest("JobNumber missing".into()));
    }
    if req.child(&ns, "Crypt").is_some_and(|c| c.text() == "ECC") {
        return Err(SimError::Unsupported(
            "ECC signatures (SM-B signs RSA, A_2020)".into(),
        ));
    }
    let card = require_signing_card(sim, handle)?;
    let key = card
        .osig
        .as_ref()
        .ok_or_else(|| SimError::Key("card has no signature key".into()))?;
    let mut responses = String::new();
    let mut any = false;
    for sr in req
        .children
        .iter()
        .filter(|c| c.ns == ns && c.name == "SignRequest")
    {
        any = true;
        let request_id = sr.attr("RequestID").unwrap_or_default();
        let mut attrs = Vec::new();
        let mut include = true;
        if let Some(opt) = sr.child(&ns, "OptionalInputs") {
            let mut found = Vec::new();
            opt.find_all_local("CMSAttribute", &mut found);
            for a in found {
                attrs.push(b64(a)?);
            }
            if let Some(ie) = opt.child(&ns, "IncludeEContent") {
                include = matches!(ie.text(), "true" | "1");
            }
        }
        let doc = sr
            .child(&ns, "Document")
            .ok_or_else(|| SimError::BadRequest("Document missing".into()))?;
        let content = b64(required(doc, "Base64Data")?)?;
        let cms = cms_sign(
            key,
            &SignInput {
                content: &content,
                extra_signed_attrs: &attrs,
                signing_time_unix: sim.now_unix(),
                include_econtent: include,
            },
        )?;
        responses.push_str(&format!(
            "<SIG:SignResponse RequestID=\"{}\">{}<dss:SignatureObject><dss:Base64Signature \
Type=\"urn:ietf:rfc:5652\">{}</dss:Base64Signature></dss:SignatureObject></SIG:SignResponse>",
            escape(request_id),
            status_ok(),
            b64_encode(&cms)
        ));
    }
    if !any {
        return Err(SimError::BadRequest("SignRequest missing".into()));
    }
    Ok(format!(
        "<SIG:SignDocumentResponse xmlns:SIG=\"{ns}\" xmlns:CONN=\"{NS_CONN}\" xmlns:dss=\"{NS_DSS}\">\
{responses}</SIG:SignDocumentResponse>"
    ))
}

const MAJOR_OK: &str = "urn:oasis:names:tc:dss:1.0:detail:valid";
const MAJOR_BAD: &str = "urn:oasis:names:tc:dss:1.0:detail:invalid";
const MAJOR_INDET: &str = "urn:oasis:names:tc:dss:1.0:detail:indetermined";

fn vr_result(ok: Option<bool>) -> String {
    let major = match ok {
        Some(true) => MAJOR_OK,
        Some(false) => MAJOR_BAD,
        None => MAJOR_INDET,
    };
    format!("<vr:ResultMajor>{major}</vr:ResultMajor>")
}

/// ResultMinor of an incorrect signature (OASIS DSS core).
const MINOR_INCORRECT_SIGNATURE: &str =
    "urn:oasis:names:tc:dss:1.0:resultminor:invalid:IncorrectSignature";
/// gematik code for a certificate path that cannot be validated (Tab_Verm_Sig_Prüf 05).
const CODE_PATH_INVALID: u32 = 4206;
/// gematik code for a certificate status that cannot be checked (Tab_Verm_Sig_Prüf 07).
const CODE_STATUS_UNKNOWN: u32 = 4264;

/// The verdict as a real Konnektor reports it: `Status` stays OK, the reason is in the report
/// (a ResultMinor for a broken signature, a gematik code in ResultMessage for the path).
struct Verdict {
    high_level: HighLevel,
    minor: Option<&'static str>,
    message: Option<String>,
    /// PathValiditySummary and ChainingOK.
    path_ok: Option<bool>,
    validity_ok: Option<bool>,
    status_ok: Option<bool>,
}

fn verdict(out: &VerifyOutcome, status_unavailable: bool) -> Verdict {
    let path = |code: u32, why: String| {
        Some(format!(
            "{code}: Der Zertifizierungspfad des Signaturzertifikats kann nicht validiert werden ({why})."
        ))
    };
    let mut v = match &out.chain {
        ChainStatus::Valid if status_unavailable => Verdict {
            high_level: HighLevel::Inconclusive,
            minor: None,
            message: Some(format!(
                "{CODE_STATUS_UNKNOWN}: Der Zertifikatsstatus des Signaturzertifikats konnte nicht geprüft werden (OCSP-Responder nicht erreichbar)."
            )),
            path_ok: None,
            validity_ok: Some(true),
            status_ok: None,
        },
        ChainStatus::Valid => Verdict {
            high_level: HighLevel::Valid,
            minor: None,
            message: None,
            path_ok: Some(true),
            validity_ok: Some(true),
            status_ok: Some(true),
        },
        ChainStatus::Unverifiable { missing_issuer } => Verdict {
            high_level: HighLevel::Inconclusive,
            minor: None,
            message: path(
                CODE_PATH_INVALID,
                format!("Aussteller unbekannt: {missing_issuer}"),
            ),
            path_ok: None,
            validity_ok: Some(true),
            status_ok: None,
        },
        ChainStatus::Expired { subject } => Verdict {
            high_level: HighLevel::Invalid,
            minor: None,
            message: path(CODE_PATH_INVALID, format!("zeitlich ungültig: {subject}")),
            path_ok: Some(false),
            validity_ok: Some(false),
            status_ok: None,
        },
        ChainStatus::Revoked => Verdict {
            high_level: HighLevel::Invalid,
            minor: None,
            message: path(CODE_PATH_INVALID, "Zertifikat gesperrt".into()),
            path_ok: Some(false),
            validity_ok: Some(true),
            status_ok: Some(false),
        },
        ChainStatus::BadSignature { subject } => Verdict {
            high_level: HighLevel::Invalid,
            minor: None,
            message: path(
                CODE_PATH_INVALID,
                format!("Signatur des Ausstellers ungültig: {subject}"),
            ),
            path_ok: Some(false),
            validity_ok: Some(true),
            status_ok: None,
        },
    };
    if !out.signature_valid {
        // The signature itself is broken: INVALID whatever the path, named by ResultMinor
        // and SigMathOK, without a gematik code (Status OK).
        v.high_level = HighLevel::Invalid;
        v.minor = Some(MINOR_INCORRECT_SIGNATURE);
        v.message = None;
    }
    v
}

/// The vr:VerificationReport for one signature: signature maths, path summary and the signer
/// certificate (CertificateValue) so the client can show who signed.
fn report(out: &VerifyOutcome, v: &Verdict, now: u64) -> Result<String, SimError> {
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&out.signer_cert_der)?;
    let issuer = escape(&cert.tbs_certificate.issuer.to_string());
    let subject = escape(&cert.tbs_certificate.subject.to_string());
    let serial = rsa::BigUint::from_bytes_be(cert.tbs_certificate.serial_number.as_bytes());
    let ident = format!(
        "<vr:CertificateIdentifier><ds:X509IssuerName>{issuer}</ds:X509IssuerName>\
<ds:X509SerialNumber>{serial}</ds:X509SerialNumber></vr:CertificateIdentifier>"
    );
    let overall = match v.high_level {
        HighLevel::Valid => MAJOR_OK,
        HighLevel::Invalid => MAJOR_BAD,
        HighLevel::Inconclusive => MAJOR_INDET,
    };
    let minor = v
        .minor
        .map(|m| format!("<dss:ResultMinor>{m}</dss:ResultMinor>"))
        .unwrap_or_default();
    let message = v
        .message
        .as_deref()
        .map(|m| {
            format!(
                "<dss:ResultMessage xml:lang=\"de\">{}</dss:ResultMessage>",
                escape(m)
            )
        })
        .unwrap_or_default();
    Ok(format!(
        "<vr:VerificationReport><dss:VerificationTimeInfo><dss:VerificationTime>{}</dss:VerificationTime>\
</dss:VerificationTimeInfo><vr:IndividualReport><vr:SignedObjectIdentifier/><dss:Result>\
<dss:ResultMajor>{overall}</dss:ResultMajor>{minor}{message}</dss:Result><vr:Details><vr:DetailedSignatureReport>\
<vr:FormatOK>{}</vr:FormatOK><vr:SignatureOK><vr:SigMathOK>{}</vr:SigMathOK></vr:SignatureOK>\
<vr:CertificatePathValidity><vr:PathValiditySummary>{}</vr:PathValiditySummary>{ident}\
<vr:PathValidityDetail><vr:CertificateValidity>{ident}<vr:Subject>{subject}</vr:Subject>\
<vr:ChainingOK>{}</vr:ChainingOK><vr:ValidityPeriodOK>{}</vr:ValidityPeriodOK>\
<vr:ExtensionsOK>{}</vr:ExtensionsOK><vr:CertificateValue>{}</vr:CertificateValue>\
<vr:SignatureOK><vr:SigMathOK>{}</vr:SigMathOK></vr:SignatureOK><vr:CertificateStatus>\
<vr:CertStatusOK>{}</vr:CertStatusOK></vr:CertificateStatus></vr:CertificateValidity>\
<vr:TrustAnchor>{}</vr:TrustAnchor></vr:PathValidityDetail></vr:CertificatePathValidity>\
</vr:DetailedSignatureReport></vr:Details></vr:IndividualReport></vr:VerificationReport>",
        xs_date_time(now),
        vr_result(Some(true)),
        vr_result(Some(out.signature_valid)),
        vr_result(v.path_ok),
        vr_result(v.path_ok),
        vr_result(v.validity_ok),
        vr_result(Some(true)),
        b64_encode(&out.signer_cert_der),
        vr_result(v.path_ok),
        vr_result(v.status_ok),
        vr_result(v.path_ok),
    ))
}

/// VerifyDocument: verifies `dss:SignatureObject/dss:Base64Signature` (CMS) against the
/// configured anchors and revocation list at the simulator's `now`; returns HighLevelResult,
/// the VerificationReport with the signer certificate, and the econtent as
/// `SIG:DocumentWithSignature/dss:Base64Data`.
pub fn verify_document(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    let ns = sig_ns(sim);
    let sig = req
        .child(NS_DSS, "SignatureObject")
        .and_then(|s| s.child(NS_DSS, "Base64Signature"))
        .ok_or_else(|| {
            SimError::BadRequest("dss:SignatureObject/Base64Signature missing".into())
        })?;
    let cms = b64(sig)?;
    let cfg = sim.config();
    let now = sim.now_unix();
    let out = cms_verify(
        &cms,
        &VerifyPolicy {
            trust_anchors: &cfg.trust_anchors,
            revoked_serials: &cfg.revoked_serials,
            now_unix: now,
        },
    )
    .map_err(as_verify_fault)?;
    let v = verdict(&out, cfg.revocation_status_unavailable);
    let doc = out
        .econtent
        .as_ref()
        .map(|c| {
            format!(
                "<SIG:DocumentWithSignature><dss:Base64Data>{}</dss:Base64Data></SIG:DocumentWithSignature>",
                b64_encode(c)
            )
        })
        .unwrap_or_default();
    Ok(format!(
        "<SIG:VerifyDocumentResponse xmlns:SIG=\"{ns}\" xmlns:CONN=\"{NS_CONN}\" xmlns:dss=\"{NS_DSS}\" \
xmlns:vr=\"{NS_VR}\" xmlns:ds=\"{NS_DS}\">{}<SIG:VerificationResult><SIG:HighLevelResult>{}\
</SIG:HighLevelResult><SIG:TimestampType>SYSTEM_TIMESTAMP</SIG:TimestampType><SIG:Timestamp>{}\
</SIG:Timestamp></SIG:VerificationResult><SIG:OptionalOutputs>{doc}{}</SIG:OptionalOutputs>\
</SIG:VerifyDocumentResponse>",
        status_ok(),
        v.high_level.as_str(),
        xs_date_time(now),
        report(&out, &v, now)?
    ))
}

/// A document VerifyDocument cannot take apart is refused with the codes of Tab_Verm_Sig_Prüf:
/// no signerInfo 4253 (no signature), any other structural fault 4112 (wrong format).
fn as_verify_fault(e: SimError) -> SimError {
    match e {
        SimError::Asn1(m) if m == "no signerInfo" => SimError::Coded {
            code: 4253,
            text: "VerifyDocument: keine Signatur vorhanden".into(),
        },
        SimError::Asn1(m) => SimError::Coded {
            code: 4112,
            text: format!("VerifyDocument: falsches Format ({m})"),
        },
        other => other,
    }
}
