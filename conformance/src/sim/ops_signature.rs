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

/// The vr:VerificationReport for one signature: signature maths, path summary and the signer
/// certificate (CertificateValue) so the client can show who signed.
fn report(out: &VerifyOutcome, now: u64) -> Result<String, SimError> {
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&out.signer_cert_der)?;
    let issuer = escape(&cert.tbs_certificate.issuer.to_string());
    let subject = escape(&cert.tbs_certificate.subject.to_string());
    let serial = rsa::BigUint::from_bytes_be(cert.tbs_certificate.serial_number.as_bytes());
    let ident = format!(
        "<vr:CertificateIdentifier><ds:X509IssuerName>{issuer}</ds:X509IssuerName>\
<ds:X509SerialNumber>{serial}</ds:X509SerialNumber></vr:CertificateIdentifier>"
    );
    let path_ok = match out.chain {
        ChainStatus::Valid => Some(true),
        ChainStatus::Unverifiable { .. } => None,
        _ => Some(false),
    };
    let (validity_ok, status_ok_) = match out.chain {
        ChainStatus::Expired { .. } => (Some(false), None),
        ChainStatus::Revoked => (Some(true), Some(false)),
        ChainStatus::Unverifiable { .. } => (Some(true), None),
        _ => (Some(true), Some(true)),
    };
    let overall = match out.high_level {
        HighLevel::Valid => MAJOR_OK,
        HighLevel::Invalid => MAJOR_BAD,
        HighLevel::Inconclusive => MAJOR_INDET,
    };
    Ok(format!(
        "<vr:VerificationReport><dss:VerificationTimeInfo><dss:VerificationTime>{}</dss:VerificationTime>\
</dss:VerificationTimeInfo><vr:IndividualReport><vr:SignedObjectIdentifier/><dss:Result>\
<dss:ResultMajor>{overall}</dss:ResultMajor></dss:Result><vr:Details><vr:DetailedSignatureReport>\
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
        vr_result(path_ok),
        vr_result(path_ok),
        vr_result(validity_ok),
        vr_result(Some(true)),
        b64_encode(&out.signer_cert_der),
        vr_result(path_ok),
        vr_result(status_ok_),
        vr_result(path_ok),
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
    )?;
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
        out.high_level.as_str(),
        xs_date_time(now),
        report(&out, now)?
    ))
}
