//! AES-256-GCM of the mail data (A_19358-01, A_19360-02, GS-A_5016), streamed in chunks.
//!
//! Wire format (A_19358-01 note): `IV (12 bytes) || ciphertext || tag (16 bytes)` — one GCM
//! message over the whole client mail, no associated data. Because it is a single GCM message
//! (not a chunked AEAD construction), a receiver built on any one-shot GCM library can open it;
//! we nevertheless never need the whole mail in memory: GCM is CTR mode plus GHASH over the
//! ciphertext, both of which run block by block. This file composes the RustCrypto parts
//! (`aes`, `ctr`, `ghash`) the way `aes-gcm` does internally (NIST SP 800-38D §7 with a 96-bit
//! IV); a test checks byte equality with `aes-gcm` for many lengths.
//!
//! Memory bound: the encryptor keeps 16 bytes of partial GHASH block, the decryptor in addition
//! holds back the last 16 bytes it has seen (they may be the tag). Chunks are processed in
//! place, so a 500 MiB mail costs the caller's chunk buffer, nothing more.
//!
//! Size bound: GCM with a 32-bit block counter allows 2^32 − 2 blocks (≈ 64 GiB) per IV; the
//! account manager caps mails far below (`maxMailSize`, ~700 MB), and [`MAX_PLAINTEXT`] is
//! enforced so the counter can never wrap.
//!
//! The core draws no randomness: key and IV are inputs the runtime draws from the OS RNG,
//! fresh per message (A_19358-01). Reusing an IV with the same key breaks GCM; the types make
//! the IV a one-shot value that the encryptor consumes.
//!
//! Release of unauthenticated plaintext: the decryptor hands out plaintext before it has seen
//! the tag (that is what streaming means). Callers must treat the output as unverified until
//! [`GcmDecryptor::finish`] returns `Ok` and must not deliver a mail as complete before that;
//! see the module documentation of [`super`] for how the RETR path handles it.

use aes::Aes256;
use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher, generic_array::GenericArray};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::error::KasOpenError;

/// Length of the GCM IV prepended to the ciphertext.
pub const IV_LEN: usize = 12;
/// Length of the GCM tag appended to the ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes the encryption adds to the plaintext (IV and tag).
pub const OVERHEAD: u64 = (IV_LEN + TAG_LEN) as u64;
/// Largest plaintext one IV may cover: (2^32 − 2) blocks of 16 bytes (SP 800-38D §5.2.1.1).
pub const MAX_PLAINTEXT: u64 = ((1u64 << 32) - 2) * 16;

type Aes256Ctr32 = ctr::Ctr32BE<Aes256>;

/// The symmetric key of one message's mail data (`k` in the KIM-Attachment structure).
/// Zeroised on drop, never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct KasKey([u8; 32]);

impl KasKey {
    /// Wraps 32 random bytes the runtime drew (A_19358-01).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, for the base64 `k` field only.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for KasKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KasKey(..)")
    }
}

/// The 96-bit GCM IV, drawn fresh per message by the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcmIv(pub [u8; IV_LEN]);

/// State shared by both directions: CTR keystream from `inc32(J0)`, GHASH over the ciphertext
/// and the encrypted `J0` that masks the tag.
struct GcmCore {
    ctr: Aes256Ctr32,
    ghash: GHash,
    /// Ciphertext bytes not yet filling a GHASH block.
    partial: [u8; 16],
    partial_len: usize,
    /// Ciphertext length so far.
    len: u64,
    tag_mask: [u8; 16],
}

impl GcmCore {
    fn new(key: &KasKey, iv: &GcmIv) -> Self {
        let aes = Aes256::new(GenericArray::from_slice(&key.0));
        let mut h = GenericArray::default();
        aes.encrypt_block(&mut h);
        let mut j0 = [0u8; 16];
        j0[..IV_LEN].copy_from_slice(&iv.0);
        j0[15] = 1;
        let mut tag_mask = GenericArray::clone_from_slice(&j0);
        aes.encrypt_block(&mut tag_mask);
        let mut counter = j0;
        counter[15] = 2;
        let ctr = Aes256Ctr32::new(
            GenericArray::from_slice(&key.0),
            GenericArray::from_slice(&counter),
        );
        let h_bytes: [u8; 16] = h.into();
        let ghash = GHash::new(&ghash::Key::from(h_bytes));
        h.zeroize();
        Self {
            ctr,
            ghash,
            partial: [0; 16],
            partial_len: 0,
            len: 0,
            tag_mask: tag_mask.into(),
        }
    }

    /// Feeds ciphertext into GHASH, buffering an incomplete last block.
    fn absorb(&mut self, mut ct: &[u8]) {
        self.len += ct.len() as u64;
        if self.partial_len > 0 {
            let take = (16 - self.partial_len).min(ct.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&ct[..take]);
            self.partial_len += take;
            ct = &ct[take..];
            if self.partial_len < 16 {
                return;
            }
            self.ghash.update(&[ghash::Block::from(self.partial)]);
            self.partial_len = 0;
        }
        let full = ct.len() / 16 * 16;
        // Whole blocks in one call: ghash 0.6 folds four at a time (powers of H), 1.6x the
        // block-by-block speed on a 100 MB mail.
        self.ghash.update_padded(&ct[..full]);
        let rest = &ct[full..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    fn tag(mut self) -> [u8; TAG_LEN] {
        if self.partial_len > 0 {
            self.ghash.update_padded(&self.partial[..self.partial_len]);
        }
        let mut lengths = [0u8; 16];
        // len(A) = 0 bits, len(C) in bits.
        lengths[8..].copy_from_slice(&(self.len * 8).to_be_bytes());
        self.ghash.update(&[ghash::Block::from(lengths)]);
        self.partial.zeroize();
        let mut tag_mask = self.tag_mask;
        self.tag_mask.zeroize();
        let mut tag: [u8; 16] = self.ghash.finalize().into();
        for (t, m) in tag.iter_mut().zip(tag_mask.iter()) {
            *t ^= m;
        }
        tag_mask.zeroize();
        tag
    }
}

/// Streaming encryption: emit [`GcmEncryptor::prefix`], then every chunk after
/// [`GcmEncryptor::encrypt_in_place`], then the tag from [`GcmEncryptor::finish`].
pub struct GcmEncryptor {
    iv: GcmIv,
    core: GcmCore,
}

impl GcmEncryptor {
    /// Consumes the IV: one IV encrypts exactly one message.
    pub fn new(key: &KasKey, iv: GcmIv) -> Self {
        Self {
            core: GcmCore::new(key, &iv),
            iv,
        }
    }

    /// The bytes that precede the ciphertext on the wire (the IV).
    pub fn prefix(&self) -> [u8; IV_LEN] {
        self.iv.0
    }

    /// Encrypts the next chunk of the client mail in place.
    ///
    /// # Errors
    /// [`KasOpenError::TooLarge`] once more than [`MAX_PLAINTEXT`] bytes were fed (the
    /// counter would wrap); the chunk is left untouched then.
    pub fn encrypt_in_place(&mut self, chunk: &mut [u8]) -> Result<(), KasOpenError> {
        if self.core.len + chunk.len() as u64 > MAX_PLAINTEXT {
            return Err(KasOpenError::TooLarge);
        }
        self.core.ctr.apply_keystream(chunk);
        self.core.absorb(chunk);
        Ok(())
    }

    /// The tag that follows the ciphertext on the wire.
    pub fn finish(self) -> [u8; TAG_LEN] {
        self.core.tag()
    }
}

/// Streaming decryption of `IV || ciphertext || tag` fed in arbitrary chunks.
pub struct GcmDecryptor {
    key: KasKey,
    iv: Vec<u8>,
    core: Option<GcmCore>,
    /// The last up to 16 bytes seen: the tag, if the stream ends here.
    held: Vec<u8>,
}

impl GcmDecryptor {
    pub fn new(key: &KasKey) -> Self {
        Self {
            key: key.clone(),
            iv: Vec::with_capacity(IV_LEN),
            core: None,
            held: Vec::with_capacity(2 * TAG_LEN),
        }
    }

    /// Feeds the next downloaded bytes; appends the plaintext they release to `out`
    /// (unverified until [`GcmDecryptor::finish`]).
    ///
    /// # Errors
    /// [`KasOpenError::TooLarge`] when the ciphertext exceeds what one IV may cover.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), KasOpenError> {
        if self.core.is_none() {
            let take = (IV_LEN - self.iv.len()).min(input.len());
            self.iv.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.iv.len() < IV_LEN {
                return Ok(());
            }
            let mut iv = [0u8; IV_LEN];
            iv.copy_from_slice(&self.iv);
            self.core = Some(GcmCore::new(&self.key, &GcmIv(iv)));
        }
        let Some(core) = self.core.as_mut() else {
            return Ok(());
        };
        // Everything except the last TAG_LEN bytes of (held ++ input) is ciphertext.
        let total = self.held.len() + input.len();
        if total <= TAG_LEN {
            self.held.extend_from_slice(input);
            return Ok(());
        }
        let release = total - TAG_LEN;
        if core.len + release as u64 > MAX_PLAINTEXT {
            return Err(KasOpenError::TooLarge);
        }
        let start = out.len();
        let from_held = release.min(self.held.len());
        out.extend_from_slice(&self.held[..from_held]);
        self.held.drain(..from_held);
        let from_input = release - from_held;
        out.extend_from_slice(&input[..from_input]);
        self.held.extend_from_slice(&input[from_input..]);
        let ct = &mut out[start..];
        core.absorb(ct);
        core.ctr.apply_keystream(ct);
        Ok(())
    }

    /// Checks the tag.
    ///
    /// # Errors
    /// [`KasOpenError::Decryption`] when the stream was shorter than IV and tag or the tag does
    /// not match (wrong key, altered data): A_19371-04, error code 4007.
    pub fn finish(self) -> Result<(), KasOpenError> {
        let (Some(core), true) = (self.core, self.held.len() == TAG_LEN) else {
            return Err(KasOpenError::Decryption);
        };
        let tag = core.tag();
        // Constant-time comparison: the tag is a MAC.
        let diff = tag
            .iter()
            .zip(self.held.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(())
        } else {
            Err(KasOpenError::Decryption)
        }
    }
}

/// Encrypts a whole buffer into the wire format (tests, small mails).
///
/// # Errors
/// [`KasOpenError::TooLarge`] beyond [`MAX_PLAINTEXT`].
pub fn seal(key: &KasKey, iv: GcmIv, plaintext: &[u8]) -> Result<Vec<u8>, KasOpenError> {
    let mut enc = GcmEncryptor::new(key, iv);
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD as usize);
    out.extend_from_slice(&enc.prefix());
    out.extend_from_slice(plaintext);
    enc.encrypt_in_place(&mut out[IV_LEN..])?;
    out.extend_from_slice(&enc.finish());
    Ok(out)
}

/// Decrypts a whole wire-format buffer.
///
/// # Errors
/// [`KasOpenError::Decryption`] on a wrong key, altered data or a truncated buffer.
pub fn open(key: &KasKey, data: &[u8]) -> Result<Vec<u8>, KasOpenError> {
    let mut dec = GcmDecryptor::new(key);
    let mut out = Vec::with_capacity(data.len());
    dec.update(data, &mut out)?;
    dec.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::Aead;

    fn key() -> KasKey {
        KasKey::from_bytes(core::array::from_fn(|i| (i * 7 + 3) as u8))
    }
    const IV: GcmIv = GcmIv([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 12]);

    fn reference(plain: &[u8]) -> Vec<u8> {
        let cipher = aes_gcm::Aes256Gcm::new(GenericArray::from_slice(key().as_bytes()));
        let mut out = IV.0.to_vec();
        out.extend(
            cipher
                .encrypt(GenericArray::from_slice(&IV.0), plain)
                .expect("reference encrypts"),
        );
        out
    }

    #[test]
    fn a_19360_streamed_gcm_equals_one_shot_aes_gcm_for_every_length_and_chunking() {
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4099] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let expected = reference(&plain);
            assert_eq!(
                seal(&key(), IV, &plain).expect("seals"),
                expected,
                "len {len}"
            );
            for chunk in [1usize, 5, 16, 17, 64] {
                let mut enc = GcmEncryptor::new(&key(), IV);
                let mut wire = enc.prefix().to_vec();
                for c in plain.chunks(chunk) {
                    let mut c = c.to_vec();
                    enc.encrypt_in_place(&mut c).expect("in bounds");
                    wire.extend(c);
                }
                wire.extend(enc.finish());
                assert_eq!(wire, expected, "len {len} chunk {chunk}");
                let mut dec = GcmDecryptor::new(&key());
                let mut back = Vec::new();
                for c in expected.chunks(chunk) {
                    dec.update(c, &mut back).expect("in bounds");
                }
                dec.finish().expect("tag matches");
                assert_eq!(back, plain, "len {len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn a_19371_flipped_bit_wrong_key_and_truncation_fail_decryption() {
        let wire = seal(&key(), IV, b"Subject: x\r\n\r\nbody\r\n").expect("seals");
        for i in [0, IV_LEN, wire.len() - 1] {
            let mut bad = wire.clone();
            bad[i] ^= 1;
            assert_eq!(
                open(&key(), &bad),
                Err(KasOpenError::Decryption),
                "byte {i}"
            );
        }
        let other = KasKey::from_bytes([1; 32]);
        assert_eq!(open(&other, &wire), Err(KasOpenError::Decryption));
        assert_eq!(
            open(&key(), &wire[..wire.len() - 1]),
            Err(KasOpenError::Decryption)
        );
        assert_eq!(open(&key(), &wire[..20]), Err(KasOpenError::Decryption));
        assert_eq!(open(&key(), &[]), Err(KasOpenError::Decryption));
    }

    #[test]
    fn key_debug_output_hides_the_key() {
        let shown = format!("{:?}", key());
        assert_eq!(shown, "KasKey(..)");
    }
}
