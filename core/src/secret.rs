//! Buffers for message content and passwords.
//!
//! KOM-LE-A_2005 forbids keeping message content longer than needed, and logs must never show
//! passwords or content. These wrappers wipe their memory when dropped and print as
//! `<redacted N bytes>`, so a stray `{:?}` in a log line cannot leak what they hold.

use core::fmt;
use zeroize::Zeroize;

/// Capacity from which [`SecretBytes`] grows with `realloc` instead of copy-and-wipe.
///
/// WHY: copying a buffer to grow it holds the old and the new copy at once, so a 40 MB mail
/// without `SIZE=` cost up to twice its size during DATA (issue 17). Blocks of 32 MiB and more
/// are always their own memory mapping in glibc (its largest dynamic mmap threshold) and in
/// musl, and both grow such a mapping with `mremap`: the pages are moved, not copied, so
/// neither a second copy nor an unwiped old copy exists. Below this size the copy is cheap and
/// the old buffer is wiped as before.
pub const MOVED_BY_REALLOC: usize = 32 * 1024 * 1024;

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
        // in freed memory; grow by hand so the old buffer is wiped first. From
        // [`MOVED_BY_REALLOC`] on, the allocator's own growth is used instead: see there.
        if self.0.capacity() >= MOVED_BY_REALLOC {
            self.0.reserve(bytes.len());
        } else if self.0.capacity() - self.0.len() < bytes.len() {
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

    /// Room for `additional` more bytes, reserved exactly (no doubling). On an empty buffer
    /// this is one allocation; otherwise the old buffer is wiped after the copy, as in
    /// [`SecretBytes::extend_from_slice`].
    pub fn reserve_exact(&mut self, additional: usize) {
        if self.0.capacity() - self.0.len() >= additional {
            return;
        }
        let mut bigger = Vec::with_capacity(self.0.len().saturating_add(additional));
        bigger.extend_from_slice(&self.0);
        self.0.zeroize();
        self.0 = bigger;
    }

    /// Bytes the buffer can hold without growing.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
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

    #[test]
    fn growing_past_the_realloc_threshold_keeps_all_bytes_and_reserve_exact_is_exact() {
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let mut s = SecretBytes::new();
        for _ in 0..(MOVED_BY_REALLOC >> 20) + 3 {
            s.extend_from_slice(&chunk);
        }
        assert_eq!(s.len(), MOVED_BY_REALLOC + (3 << 20));
        assert!(s.as_slice().chunks(1 << 20).all(|c| c == &chunk[..]));
        let mut r = SecretBytes::new();
        r.reserve_exact(1000);
        assert_eq!(r.capacity(), 1000);
        r.extend_from_slice(b"abc");
        r.reserve_exact(10);
        assert_eq!(r.capacity(), 1000);
        r.reserve_exact(2000);
        assert_eq!(r.capacity(), 2003);
        assert_eq!(r.as_slice(), b"abc");
    }
}
