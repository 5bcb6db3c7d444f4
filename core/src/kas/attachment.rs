//! The KIM-Attachment structure `{link, k, hash, size}` (A_19359-07, Attachment_schema.json).
//!
//! - `link`: the `sharedLink` the KAS returned for `add_Attachment` (A_19364-02).
//! - `k`: the AES-256 key, base64.
//! - `hash`: SHA-256 over the *plaintext* mail data, base64. A_19372-03 has the receiver hash
//!   the decrypted data and compare; gematik's samples and the open-source Clientmodul hash
//!   the plaintext client mail too (gemSpec_Krypt A_19644 is not part of our material).
//! - `size`: the plaintext mail data's length in bytes; the same value goes into
//!   `X-KIM-KAS-Size` (A_23467). The stored object is `size` + [`super::cipher::OVERHEAD`].
//!
//! Built and parsed with serde_json; the JSON never passes through a log (it contains `k`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cipher::KasKey;

/// One KIM-Attachment structure. `Debug` shows neither key nor link.
#[derive(Clone, PartialEq, Eq)]
pub struct KimAttachment {
    pub link: String,
    pub key: KasKey,
    pub hash: [u8; 32],
    pub size: u64,
}

impl std::fmt::Debug for KimAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KimAttachment")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The JSON as Attachment_schema.json names it.
#[derive(Serialize, Deserialize)]
struct Wire {
    link: String,
    k: String,
    hash: String,
    size: u64,
}

/// Why a KIM-Attachment body was rejected (A_19369-02: the receiver then reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachmentError {
    /// Not JSON, not an object, a required member missing or of the wrong type.
    Json,
    /// `k` is not base64 of 32 bytes.
    Key,
    /// `hash` is not base64 of a SHA-256 value.
    Hash,
    /// `link` is not an `https://` URL of printable ASCII.
    Link,
}

impl std::fmt::Display for AttachmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Json => "KIM-Attachment: not the schema's JSON",
            Self::Key => "KIM-Attachment: k is not a base64 AES-256 key",
            Self::Hash => "KIM-Attachment: hash is not a base64 SHA-256 value",
            Self::Link => "KIM-Attachment: link is not an https URL",
        })
    }
}

impl std::error::Error for AttachmentError {}

/// Whether `link` may be used as the KAS download URL (and put into a 7bit body).
pub fn valid_link(link: &str) -> bool {
    link.len() > "https://".len()
        && link
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        && link.bytes().all(|b| b.is_ascii_graphic())
}

impl KimAttachment {
    /// The structure for a finished upload.
    pub fn new(link: String, key: KasKey, hash: [u8; 32], size: u64) -> Self {
        Self {
            link,
            key,
            hash,
            size,
        }
    }

    /// The JSON text (single line, ASCII), the only body of the KOM-LE message.
    ///
    /// # Errors
    /// [`AttachmentError::Link`] if `link` is not an https URL of printable ASCII.
    pub fn to_json(&self) -> Result<String, AttachmentError> {
        if !valid_link(&self.link) {
            return Err(AttachmentError::Link);
        }
        let wire = Wire {
            link: self.link.clone(),
            k: STANDARD.encode(self.key.as_bytes()),
            hash: STANDARD.encode(self.hash),
            size: self.size,
        };
        serde_json::to_string(&wire).map_err(|_| AttachmentError::Json)
    }

    /// Parses and checks a KIM-Attachment body (surrounding whitespace allowed, as in the
    /// spec's pretty-printed example; unknown members ignored, the schema allows them).
    ///
    /// # Errors
    /// [`AttachmentError`] naming the first member that does not fit.
    pub fn from_json(body: &[u8]) -> Result<Self, AttachmentError> {
        let wire: Wire = serde_json::from_slice(body).map_err(|_| AttachmentError::Json)?;
        if !valid_link(&wire.link) {
            return Err(AttachmentError::Link);
        }
        let key: [u8; 32] = STANDARD
            .decode(wire.k.trim())
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(AttachmentError::Key)?;
        let hash: [u8; 32] = STANDARD
            .decode(wire.hash.trim())
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or(AttachmentError::Hash)?;
        Ok(Self {
            link: wire.link,
            key: KasKey::from_bytes(key),
            hash,
            size: wire.size,
        })
    }
}

/// SHA-256 over the plaintext mail data, fed in chunks alongside the cipher.
#[derive(Default, Clone)]
pub struct MailDataHash(Sha256);

impl MailDataHash {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_19359_spec_example_with_whitespace_parses() {
        let body = b" {\n \"link\": \"HTTPS://KIM-FD1.telematik.de/CXFDTE82346dfzwr7634dfs76sd76sdtzq376e3tzsd\",\n \"k\": \"RzVEY3M0MzkmNGZkc2RneCVoX2tkdFQlNXczZnZDdDM2ZGZ2eGZzJDYxITJndmR1VWpzKGk=\",\n \"hash\": \"Z6A65Z2dasI2I00mM7uxtQjLsEwwl+WLMnDw8eLntaA=\",\n \"size\": 25525700 \n }\n";
        // The spec's `k` is illustrative: base64 of 52 bytes, not an AES-256 key.
        assert_eq!(KimAttachment::from_json(body), Err(AttachmentError::Key));
        let text = std::str::from_utf8(body).expect("ASCII").replace(
            "RzVEY3M0MzkmNGZkc2RneCVoX2tkdFQlNXczZnZDdDM2ZGZ2eGZzJDYxITJndmR1VWpzKGk=",
            "AZtUCtV3M5mTC/XzfDDl25mZ4FwoOADyaIi3Fn8wH6w=",
        );
        let a = KimAttachment::from_json(text.as_bytes()).expect("pretty-printed JSON parses");
        assert_eq!(a.size, 25_525_700);
    }

    #[test]
    fn a_19369_malformed_structures_are_rejected_with_the_member() {
        let ok = KimAttachment::new(
            "https://kas.example/attachment/1".into(),
            KasKey::from_bytes([7; 32]),
            [1; 32],
            5,
        )
        .to_json()
        .expect("builds");
        let mut v: serde_json::Value = serde_json::from_str(&ok).expect("json");
        let cases: [(&str, serde_json::Value, AttachmentError); 6] = [
            ("k", "AAAA".into(), AttachmentError::Key),
            ("hash", "not base64!".into(), AttachmentError::Hash),
            ("link", "http://kas.example/x".into(), AttachmentError::Link),
            ("size", (-1).into(), AttachmentError::Json),
            ("size", "5".into(), AttachmentError::Json),
            ("link", serde_json::Value::Null, AttachmentError::Json),
        ];
        for (member, value, expected) in cases {
            let mut bad = v.clone();
            bad[member] = value;
            let text = serde_json::to_vec(&bad).expect("json");
            assert_eq!(KimAttachment::from_json(&text), Err(expected), "{member}");
        }
        v.as_object_mut().expect("object").remove("hash");
        let text = serde_json::to_vec(&v).expect("json");
        assert_eq!(KimAttachment::from_json(&text), Err(AttachmentError::Json));
        assert_eq!(KimAttachment::from_json(b"[]"), Err(AttachmentError::Json));
        assert_eq!(
            KimAttachment::from_json(b"\xff"),
            Err(AttachmentError::Json)
        );
    }
}
