//! Buffers for message content and passwords.
//!
//! KOM-LE-A_2005 forbids keeping message content longer than needed, and logs must never show
//! passwords or content. These wrappers wipe their memory when dropped and print as
//! `<redacted N bytes>`, so a stray `{:?}` in a log line cannot leak what they hold.

use core::fmt;
use zeroize::Zeroize;

/// Bytes of a message (or any other confidential payload), wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        // Growing a Vec reallocates and would leave an unwiped copy of the old contents behind
        // in freed memory; grow by hand so the old buffer is wiped first.
        if self.0.capacity() - self.0.len() < bytes.len() {
            let wanted = (self.0.len() + bytes.len()).max(self.0.capacity() * 2);
            let mut bigger = Vec::with_capacity(wanted);
            bigger.extend_from_slice(&self.0);
            self.0.zeroize();
            self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
    }

    pub fn push(&mut self, byte: u8) {
        self.extend_from_slice(&[byte]);
    }

    /// Wipes the content but keeps the allocation for reuse.
    pub fn clear(&mut self) {
        self.0.zeroize();
    }

    /// Access to the inner vector for in-place transformations. The caller takes over the duty
    /// not to leave unwiped copies behind.
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(v: &[u8]) -> Self {
        Self(v.to_vec())
    }
}

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

/// A password, wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted password>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2005_debug_output_never_shows_content() {
        let s = SecretBytes::from(b"Befund: streng vertraulich".to_vec());
        let shown = format!("{s:?}");
        assert_eq!(shown, "<redacted 26 bytes>");
        let p = Password::new("geheim");
        assert!(!format!("{p:?}").contains("geheim"));
    }

    #[test]
    fn growing_keeps_all_bytes_in_order() {
        let mut s = SecretBytes::with_capacity(2);
        for chunk in [&b"ab"[..], b"cdef", b"", b"g", b"hijklmnop"] {
            s.extend_from_slice(chunk);
        }
        assert_eq!(s.as_slice(), b"abcdefghijklmnop");
        s.clear();
        assert!(s.is_empty());
    }
}
