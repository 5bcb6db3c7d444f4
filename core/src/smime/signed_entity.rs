//! The decrypted plaintext is the signed-data MIME entity (sample 03); this takes the SignedData
//! out of it for VerifyDocument, without copying when it is carried binary.

use super::error::SmimeError;
use super::headers;
use super::receive::decode_base64;
use std::ops::Range;

/// Where the SignedData is: a range of the plaintext (binary) or decoded bytes (base64).
#[derive(Debug, Clone)]
pub enum SignedCms {
    /// `Content-Transfer-Encoding: binary` (the profile's form): the body range.
    InPlace(Range<usize>),
    /// Base64-encoded entity (tolerated): the decoded bytes.
    Decoded(Vec<u8>),
}

impl SignedCms {
    /// The SignedData bytes.
    pub fn bytes<'a>(&'a self, plaintext: &'a [u8]) -> &'a [u8] {
        match self {
            SignedCms::InPlace(r) => &plaintext[r.clone()],
            SignedCms::Decoded(v) => v,
        }
    }
}

/// Locates the SignedData in the decrypted entity; anything but
/// `application/pkcs7-mime; smime-type=signed-data` is [`SmimeError::WrongContentType`].
pub fn locate(plaintext: &[u8]) -> Result<SignedCms, SmimeError> {
    let head = headers::parse(plaintext)?;
    let ct = head
        .value(plaintext, "Content-Type")
        .ok_or(SmimeError::WrongContentType)?;
    let mt = headers::media_type(&ct);
    if mt != "application/pkcs7-mime" && mt != "application/x-pkcs7-mime" {
        return Err(SmimeError::WrongContentType);
    }
    if let Some(t) = headers::parameter(&ct, "smime-type")
        && !t.eq_ignore_ascii_case("signed-data")
    {
        return Err(SmimeError::WrongContentType);
    }
    let cte = head
        .value(plaintext, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    match cte.as_str() {
        "binary" | "8bit" | "7bit" | "" => Ok(SignedCms::InPlace(head.body..plaintext.len())),
        "base64" => decode_base64(&plaintext[head.body..]).map(SignedCms::Decoded),
        _ => Err(SmimeError::WrongContentType),
    }
}

/// Unwraps the signed content (sample 01): `Content-Type: message/rfc822`, blank line, the mail.
/// Returns the range of the inner mail.
pub fn unwrap_rfc822(content: &[u8]) -> Result<Range<usize>, SmimeError> {
    let head = headers::parse(content)?;
    let ct = head
        .value(content, "Content-Type")
        .ok_or(SmimeError::WrongContentType)?;
    if headers::media_type(&ct) != "message/rfc822" {
        return Err(SmimeError::WrongContentType);
    }
    Ok(head.body..content.len())
}
