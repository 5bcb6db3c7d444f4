//! The mail data stream in both directions: the cipher, the SHA-256 and the byte count run
//! side by side over the same chunks, so the runtime makes one pass and holds one chunk.
//!
//! Send: [`MailDataSealer`] over the processed client mail (header processing happens before,
//! A_19363-03), its output goes straight into the `add_Attachment` body.
//! Receive: [`MailDataOpener`] over the `read_Attachment` body, checking the tag (A_19371-04,
//! 4007), then `hash` (A_19372-03, 4012) and `size`.

use super::attachment::{KimAttachment, MailDataHash};
use super::cipher::{GcmDecryptor, GcmEncryptor, GcmIv, IV_LEN, KasKey, OVERHEAD, TAG_LEN};
use super::error::KasOpenError;

/// What the finished upload body needs and what goes into the KIM-Attachment structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub tag: [u8; TAG_LEN],
    pub hash: [u8; 32],
    /// Plaintext size (`size`, `X-KIM-KAS-Size`).
    pub size: u64,
}

/// Encrypts and hashes the mail data chunk by chunk.
pub struct MailDataSealer {
    enc: GcmEncryptor,
    hash: MailDataHash,
    size: u64,
}

impl MailDataSealer {
    /// Key and IV come from the runtime's RNG, fresh per message (A_19358-01).
    pub fn new(key: &KasKey, iv: GcmIv) -> Self {
        Self {
            enc: GcmEncryptor::new(key, iv),
            hash: MailDataHash::new(),
            size: 0,
        }
    }

    /// The first bytes of the stored object (the IV).
    pub fn prefix(&self) -> [u8; IV_LEN] {
        self.enc.prefix()
    }

    /// Hashes, then encrypts one chunk in place.
    ///
    /// # Errors
    /// [`KasOpenError::TooLarge`] past the GCM bound.
    pub fn seal_chunk(&mut self, chunk: &mut [u8]) -> Result<(), KasOpenError> {
        self.hash.update(chunk);
        self.enc.encrypt_in_place(chunk)?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    pub fn finish(self) -> Sealed {
        Sealed {
            tag: self.enc.finish(),
            hash: self.hash.finish(),
            size: self.size,
        }
    }
}

/// Size of the object stored on the KAS for `size` plaintext bytes: the attachment part's
/// `Content-Length` (A_22427-01 needs it before the first byte is sent).
pub fn stored_size(size: u64) -> u64 {
    size + OVERHEAD
}

/// Decrypts and checks downloaded mail data chunk by chunk.
pub struct MailDataOpener {
    dec: GcmDecryptor,
    hash: MailDataHash,
    size: u64,
    expected_hash: [u8; 32],
    expected_size: u64,
}

impl MailDataOpener {
    pub fn new(attachment: &KimAttachment) -> Self {
        Self {
            dec: GcmDecryptor::new(&attachment.key),
            hash: MailDataHash::new(),
            size: 0,
            expected_hash: attachment.hash,
            expected_size: attachment.size,
        }
    }

    /// Feeds downloaded bytes; appends released plaintext to `out`. The plaintext is not yet
    /// verified: deliver it as complete only after [`MailDataOpener::finish`] succeeded.
    ///
    /// # Errors
    /// [`KasOpenError::TooLarge`] as soon as more plaintext arrives than `size` announced (a
    /// KAS or attacker sending endless data is cut off early).
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), KasOpenError> {
        let start = out.len();
        self.dec.update(input, out)?;
        let released = &out[start..];
        self.size += released.len() as u64;
        if self.size > self.expected_size {
            return Err(KasOpenError::TooLarge);
        }
        self.hash.update(released);
        Ok(())
    }

    /// Checks tag, then hash and size.
    ///
    /// # Errors
    /// [`KasOpenError::Decryption`] (4007) or [`KasOpenError::HashMismatch`] (4012).
    pub fn finish(self) -> Result<(), KasOpenError> {
        self.dec.finish()?;
        if self.hash.finish() != self.expected_hash || self.size != self.expected_size {
            return Err(KasOpenError::HashMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(plain: &[u8], key: &KasKey) -> (Vec<u8>, Sealed) {
        let mut s = MailDataSealer::new(key, GcmIv([4; 12]));
        let mut wire = s.prefix().to_vec();
        for c in plain.chunks(1000) {
            let mut c = c.to_vec();
            s.seal_chunk(&mut c).expect("in bounds");
            wire.extend(c);
        }
        let sealed = s.finish();
        wire.extend(sealed.tag);
        (wire, sealed)
    }

    #[test]
    fn a_19372_round_trip_encrypt_json_decrypt_and_hash_mismatch_is_4012() {
        let key = KasKey::from_bytes([8; 32]);
        let plain: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let (wire, sealed) = upload(&plain, &key);
        assert_eq!(wire.len() as u64, stored_size(plain.len() as u64));
        let json = KimAttachment::new(
            "https://kas/attachment/1".into(),
            key.clone(),
            sealed.hash,
            sealed.size,
        )
        .to_json()
        .expect("builds");
        let att = KimAttachment::from_json(json.as_bytes()).expect("parses");
        let mut o = MailDataOpener::new(&att);
        let mut back = Vec::new();
        for c in wire.chunks(777) {
            o.update(c, &mut back).expect("in bounds");
        }
        o.finish().expect("verifies");
        assert_eq!(back, plain);

        // Same key, different content: GCM is fine, the hash in the structure is not.
        let (other, _) = upload(b"another mail", &key);
        let mut o = MailDataOpener::new(&att);
        let mut sink = Vec::new();
        o.update(&other, &mut sink).expect("smaller than announced");
        assert_eq!(o.finish(), Err(KasOpenError::HashMismatch));
        assert_eq!(KasOpenError::HashMismatch.code(), "4012");

        // Altered ciphertext: 4007.
        let mut bad = wire.clone();
        bad[100] ^= 0x80;
        let mut o = MailDataOpener::new(&att);
        o.update(&bad, &mut Vec::new()).expect("in bounds");
        assert_eq!(o.finish(), Err(KasOpenError::Decryption));
    }

    #[test]
    fn more_data_than_size_announces_is_cut_off_early() {
        let key = KasKey::from_bytes([8; 32]);
        let (wire, sealed) = upload(&[1u8; 5000], &key);
        let att = KimAttachment::new("https://k/a".into(), key, sealed.hash, 100);
        let mut o = MailDataOpener::new(&att);
        assert_eq!(
            o.update(&wire, &mut Vec::new()),
            Err(KasOpenError::TooLarge)
        );
    }
}
