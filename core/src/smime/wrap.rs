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
/// capacity (one copy of the mail). The send pipeline does not call this: it encodes the
/// [`SignInput`] parts straight into the SignDocument request.
pub fn wrap_for_signing(mail: &[u8]) -> Result<Vec<u8>, SmimeError> {
    let parts = sign_input(mail)?;
    let rest = parts.rest(mail);
    let mut out = Vec::with_capacity(parts.head.len() + rest.len());
    out.extend_from_slice(&parts.head);
    out.extend_from_slice(rest);
    Ok(out)
}

/// The step-1 sign input in two parts; [`wrap_for_signing`] is their concatenation.
#[derive(Debug)]
pub struct SignInput {
    /// The `Content-Type: message/rfc822` line, the blank line, the mail's header block in
    /// CRLF and the default `X-KIM-Dienstkennung` when absent. Small.
    pub head: Vec<u8>,
    /// What follows: the mail from the end of its header block on (the blank line and the
    /// body), in CRLF.
    pub rest: SignRest,
}

/// The second part of a [`SignInput`].
#[derive(Debug)]
pub enum SignRest {
    /// The mail's own bytes from this offset on: it has CRLF line ends only, as mail from SMTP
    /// has, so the sign input needs no full-size buffer of its own.
    Mail(usize),
    /// Bytes that differ from the mail (line ends converted).
    Converted(Vec<u8>),
}

impl SignInput {
    /// The second part; `mail` is the mail this was made from.
    pub fn rest<'a>(&'a self, mail: &'a [u8]) -> &'a [u8] {
        match &self.rest {
            SignRest::Mail(from) => mail.get(*from..).unwrap_or_default(),
            SignRest::Converted(bytes) => bytes,
        }
    }
}

/// Splits the step-1 sign input of `mail` into [`SignInput`] parts.
pub fn sign_input(mail: &[u8]) -> Result<SignInput, SmimeError> {
    let head = headers::parse(mail)?;
    let add = head.get("X-KIM-Dienstkennung").is_none();
    let mut out = Vec::with_capacity(head.end + 128);
    out.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    headers::push_crlf(&mut out, &mail[..head.end]);
    if head.end > 0 && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    if add {
        out.extend_from_slice(DEFAULT_DIENSTKENNUNG);
        out.extend_from_slice(b"\r\n");
    }
    let rest = &mail[head.end..];
    let rest = if head.body == mail.len() && head.end == mail.len() {
        // body-less mail without a blank line: terminate the header block.
        SignRest::Converted(b"\r\n".to_vec())
    } else if crlf_only(rest) {
        SignRest::Mail(head.end)
    } else {
        // `head` ends with a line end here, so the first byte of `rest` starts a new line.
        let mut converted = Vec::with_capacity(rest.len() + rest.len() / 32);
        headers::push_crlf(&mut converted, rest);
        SignRest::Converted(converted)
    };
    Ok(SignInput { head: out, rest })
}

/// True when every LF in `bytes` follows a CR (what [`headers::push_crlf`] leaves unchanged
/// when it starts at a line start).
fn crlf_only(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', bytes).all(|i| i > 0 && bytes[i - 1] == b'\r')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2019_crlf_mail_is_signed_from_its_own_bytes() {
        let mail = b"From: <a@komle.de>\r\nSubject: x\r\n\r\nline 1\r\nline 2\r\n";
        let parts = sign_input(mail).expect("parts");
        assert!(matches!(parts.rest, SignRest::Mail(_)));
        assert_eq!(parts.rest(mail), b"\r\nline 1\r\nline 2\r\n");
        let lf = b"From: <a@komle.de>\nSubject: x\n\nline 1\nline 2\n";
        let parts = sign_input(lf).expect("parts");
        assert!(matches!(parts.rest, SignRest::Converted(_)));
        assert_eq!(
            wrap_for_signing(lf).expect("lf"),
            wrap_for_signing(mail).expect("crlf")
        );
        // A bare LF in a CRLF body is converted too (as before the split).
        let mixed = b"From: <a@komle.de>\r\n\r\na\nb\r\n";
        let parts = sign_input(mixed).expect("parts");
        assert_eq!(parts.rest(mixed), b"\r\na\r\nb\r\n");
    }
}
