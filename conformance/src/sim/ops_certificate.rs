//! CertificateService VerifyCertificate: the check the Clientmodul asks for on the TLS server
//! certificate of the MTA / POP3 server (KOM-LE-A_2075-01).
//!
//! The simulator checks for real, like TUC_KON_037 at a Konnektor: validity at its `now`, the
//! revoked-serials list (its CRL), and the signature of a trust anchor over the certificate
//! (RSA, or ECDSA on P-256/P-384). The answer is `VALID`, `INCONCLUSIVE` (good, but
//! [`SimConfig::revocation_status_unavailable`](super::SimConfig) says the status could not be
//! fetched) or `INVALID` with a `GERROR:Error` naming the reason. `VerificationTime` is not
//! interpreted: the simulator checks at its own time, as the Clientmodul never sends one.
//!
//! Reason codes: our spec copy has no gemSpec_Kon TUC_KON_037 error table, so the codes below
//! are the simulator's own (in TUC_KON_037's 10xx range), one per reason so tests can tell them
//! apart.

use der::Decode;
use x509_cert::Certificate;
use x509_cert::ext::pkix::CertificatePolicies;

use super::error::SimError;
use super::simulator::{Simulator, b64, required};
use super::soap_out::{NS_CERT, NS_CONN, NS_GERROR, status_ok, xs_date_time};
use super::verify::{ChainStatus, VerifyPolicy, check_certificate};
use super::xml::{Element, escape};

/// The certificate is outside its validity period (or an anchor is).
pub const REASON_EXPIRED: u32 = 1021;
/// The certificate is on the revocation list.
pub const REASON_REVOKED: u32 = 1047;
/// No trust anchor issued the certificate (unknown CA).
pub const REASON_UNKNOWN_ISSUER: u32 = 1036;
/// An anchor with the issuer's name did not sign it (forged or tampered certificate).
pub const REASON_BAD_SIGNATURE: u32 = 1024;
/// The input is not an X.509 certificate.
pub const REASON_MALFORMED: u32 = 1002;
/// Good certificate whose revocation status could not be obtained (INCONCLUSIVE).
pub const REASON_STATUS_UNKNOWN: u32 = 4264;

const CERTIFICATE_POLICIES: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("2.5.29.32");

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Inconclusive(u32),
    Invalid(u32),
}

/// Checks `der` against the simulator's anchors, CRL and time.
pub fn judge(sim: &Simulator, der: &[u8]) -> Verdict {
    let cfg = sim.config();
    let status = check_certificate(
        der,
        &VerifyPolicy {
            trust_anchors: &cfg.trust_anchors,
            revoked_serials: &cfg.revoked_serials,
            now_unix: sim.now_unix(),
        },
    );
    match status {
        Ok(ChainStatus::Valid) if cfg.revocation_status_unavailable => {
            Verdict::Inconclusive(REASON_STATUS_UNKNOWN)
        }
        Ok(ChainStatus::Valid) => Verdict::Valid,
        Ok(ChainStatus::Expired { .. }) => Verdict::Invalid(REASON_EXPIRED),
        Ok(ChainStatus::Revoked) => Verdict::Invalid(REASON_REVOKED),
        Ok(ChainStatus::Unverifiable { .. }) => Verdict::Invalid(REASON_UNKNOWN_ISSUER),
        Ok(ChainStatus::BadSignature { .. }) => Verdict::Invalid(REASON_BAD_SIGNATURE),
        Err(_) => Verdict::Invalid(REASON_MALFORMED),
    }
}

fn reason_text(code: u32) -> &'static str {
    match code {
        REASON_EXPIRED => "Zertifikat ist zeitlich nicht gueltig",
        REASON_REVOKED => "Zertifikat ist widerrufen",
        REASON_UNKNOWN_ISSUER => "Aussteller des Zertifikats ist nicht vertrauenswuerdig",
        REASON_BAD_SIGNATURE => "Signatur des Zertifikats ist ungueltig",
        REASON_STATUS_UNKNOWN => "Sperrstatus nicht ermittelbar",
        _ => "Zertifikat nicht lesbar",
    }
}

/// The certificate's policy OIDs, the roles it carries (RoleList needs at least one `Role`;
/// a certificate without policies gets one empty role).
fn roles(der: &[u8]) -> Vec<String> {
    let policies = Certificate::from_der(der).ok().and_then(|c| {
        c.tbs_certificate
            .extensions
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.extn_id == CERTIFICATE_POLICIES)
            .and_then(|e| CertificatePolicies::from_der(e.extn_value.as_bytes()).ok())
    });
    let mut out: Vec<String> = policies
        .map(|p| {
            p.0.into_iter()
                .map(|i| i.policy_identifier.to_string())
                .collect()
        })
        .unwrap_or_default();
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// VerifyCertificate.
pub fn verify_certificate(sim: &Simulator, req: &Element) -> Result<String, SimError> {
    required(req, "Context")?;
    let der = b64(required(req, "X509Certificate")?)?;
    let verdict = judge(sim, &der);
    let (result, code) = match verdict {
        Verdict::Valid => ("VALID", None),
        Verdict::Inconclusive(c) => ("INCONCLUSIVE", Some(c)),
        Verdict::Invalid(c) => ("INVALID", Some(c)),
    };
    let error = code.map_or_else(String::new, |code| {
        format!(
            "<GERROR:Error><GERROR:MessageID>sim-vc-{code}</GERROR:MessageID>\
<GERROR:Timestamp>{}</GERROR:Timestamp><GERROR:Trace><GERROR:EventID/><GERROR:Instance/>\
<GERROR:LogReference/><GERROR:CompType>Konnektor</GERROR:CompType><GERROR:Code>{code}</GERROR:Code>\
<GERROR:Severity>Error</GERROR:Severity><GERROR:ErrorType>Security</GERROR:ErrorType>\
<GERROR:ErrorText>{}</GERROR:ErrorText></GERROR:Trace></GERROR:Error>",
            xs_date_time(sim.now_unix()),
            reason_text(code)
        )
    });
    let roles: String = roles(&der)
        .iter()
        .map(|r| format!("<CERT:Role>{}</CERT:Role>", escape(r)))
        .collect();
    Ok(format!(
        "<CERT:VerifyCertificateResponse xmlns:CERT=\"{NS_CERT}\" xmlns:CONN=\"{NS_CONN}\" \
xmlns:GERROR=\"{NS_GERROR}\">{}<CERT:VerificationStatus><CERT:VerificationResult>{result}\
</CERT:VerificationResult>{error}</CERT:VerificationStatus><CERT:RoleList>{roles}</CERT:RoleList>\
</CERT:VerifyCertificateResponse>",
        status_ok()
    ))
}
