//! The two MIME wraps around the signature (KOM-LE-A_2019/A_2299 steps 1 and 2).

use super::error::SmimeError;
use super::headers;

/// Default service identifier added when the client did not set one.
pub const DEFAULT_DIENSTKENNUNG: &[u8] = b"X-KIM-Dienstkennung: KIM-Mail;Default;V1.0";

/// Step 1: `Content-Type: message/rfc822`, blank line, then the mail, with
/// `X-KIM-Dienstkennung: KIM-Mail;Default;V1.0` appended at the end of the header block when
/// absent (where gematik puts it in sample 01).
///
/// The result is always CRLF, the canonical MIME form that is signed: gematik's `inputEmail.txt`
/// has LF line ends and its sample 01 (= the content signed in 02) has CRLF, so bare LFs are
/// turned into CRLF; CRLF input from SMTP passes unchanged. Allocated once with its final
/// capacity (one copy of the mail).
pub fn wrap_for_signing(mail: &[u8]) -> Result<Vec<u8>, SmimeError> {
    let head = headers::parse(mail)?;
    let add = head.get("X-KIM-Dienstkennung").is_none();
    let extra = match head.eol {
        headers::Eol::CrLf => 0,
        headers::Eol::Lf => mail.len() / 32,
    };
    let mut out = Vec::with_capacity(mail.len() + extra + 80);
    out.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    headers::push_crlf(&mut out, &mail[..head.end]);
    if head.end > 0 && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    if add {
        out.extend_from_slice(DEFAULT_DIENSTKENNUNG);
        out.extend_from_slice(b"\r\n");
    }
    if head.body == mail.len() && head.end == mail.len() {
        // body-less mail without a blank line: terminate the header block.
        out.extend_from_slice(b"\r\n");
    } else {
        headers::push_crlf(&mut out, &mail[head.end..]);
    }
    Ok(out)
}

/// Header of the signed-data MIME entity (gematik sample 03), CRLF as in the sample.
pub const SIGNED_ENTITY_HEADER: &[u8] = b"MIME-Version: 1.0\r\n\
Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-Disposition: attachment; filename=smime.p7m\r\n\r\n";

/// Step 2: the signed-data MIME entity: fixed header, then the SignedData DER unchanged.
///
/// `Content-Transfer-Encoding: binary` means the DER goes in untouched. (gematik's sample 03 was
/// produced by a tool that additionally turned every bare CR and bare LF inside the DER into
/// CRLF, 42 bytes in that sample, which corrupts the DER; we do not reproduce that.)
pub fn wrap_signed(signed_cms: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNED_ENTITY_HEADER.len() + signed_cms.len());
    out.extend_from_slice(SIGNED_ENTITY_HEADER);
    out.extend_from_slice(signed_cms);
    out
}
