//! SignatureService `GetJobNumber`: the mandatory `JobNumber` of SignDocument (gemSpec_Kon
//! TAB_KON_065; a SignDocument without it is schema-valid but rejected by a real Konnektor).

use super::context::CallContext;
use super::envelope::{SoapRequest, with_payload};
use super::error::KonnektorError;
use super::namespaces::{CCTX, CONN, SIG_V7_4, SIG_V7_5};
use super::service_directory::SignatureServiceVersion;
use super::xml_writer::XmlOut;

/// Request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetJobNumberRequest<'a> {
    pub version: SignatureServiceVersion,
    pub context: &'a CallContext,
}

/// SOAPAction per SignatureService WSDL version.
pub fn soap_action(version: SignatureServiceVersion) -> &'static str {
    match version {
        SignatureServiceVersion::V7_4 => {
            "http://ws.gematik.de/conn/SignatureService/v7.4#GetJobNumber"
        }
        SignatureServiceVersion::V7_5 => {
            "http://ws.gematik.de/conn/SignatureService/v7.5#GetJobNumber"
        }
    }
}

/// Builds the request.
pub fn build(req: &GetJobNumberRequest<'_>) -> SoapRequest {
    let mut out = XmlOut::envelope(0);
    out.start_with(
        "SIG:GetJobNumber",
        &[
            ("xmlns:SIG", req.version.namespace()),
            ("xmlns:CCTX", CCTX),
            ("xmlns:CONN", CONN),
        ],
    );
    req.context.write(&mut out);
    out.end("SIG:GetJobNumber");
    SoapRequest {
        soap_action: soap_action(req.version),
        body: out.finish(),
    }
}

/// True if `s` matches the schema pattern `[A-Z][A-Z][A-Z]-[0-9][0-9][0-9]`.
pub fn is_valid_job_number(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[..3].iter().all(u8::is_ascii_uppercase)
        && b[3] == b'-'
        && b[4..].iter().all(u8::is_ascii_digit)
}

/// Parses the response and returns the job number.
pub fn parse(input: &[u8]) -> Result<String, KonnektorError> {
    with_payload(
        input,
        &[SIG_V7_4, SIG_V7_5],
        "GetJobNumberResponse",
        "SIG:GetJobNumberResponse",
        |resp| {
            let ns = std::str::from_utf8(resp.ns()).unwrap_or_default();
            let job = resp
                .require(ns, "JobNumber", "SIG:JobNumber")?
                .text("SIG:JobNumber")?;
            if is_valid_job_number(&job) {
                Ok(job)
            } else {
                Err(KonnektorError::InvalidValue("SIG:JobNumber"))
            }
        },
    )
}
