//! The link under which a message's mail data lie on the KAS (`sharedLink`, A_19364-02), as
//! it travels from the send path to the session and back as a deletion job.
//!
//! WHY a type of its own: together with the key it is the way to the mail data, so it stays
//! out of `Debug` output and log lines like other secrets.

/// A KAS link; `Debug` shows no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct KasLink(String);

impl KasLink {
    pub fn new(link: String) -> Self {
        Self(link)
    }

    /// The URL, for the HTTP request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for KasLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KasLink(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_part_of_the_link() {
        let l = KasLink::new("https://kas.example/attachment/abc123".into());
        assert_eq!(format!("{l:?}"), "KasLink(..)");
        assert_eq!(l.expose(), "https://kas.example/attachment/abc123");
    }
}
