//! The simulator's storage: encrypted mail data objects in memory, per-account usage for the
//! quota, download counters for 429.

use std::collections::HashMap;

/// Limits and accounts of a simulated KAS.
#[derive(Debug, Clone)]
pub struct KasSimConfig {
    /// Largest attachment part accepted (413 above). gematik's reference KAS: 500 MiB.
    pub max_mail_size: u64,
    /// Bytes one account may store (507 above).
    pub quota: u64,
    /// Downloads per object before 429.
    pub max_downloads: u32,
    /// Basic credentials (user, password) for add/delete; empty: no Basic check.
    pub accounts: Vec<(String, String)>,
    /// `dataTimeToLive` getLimits reports (days).
    pub data_time_to_live: u32,
}

impl Default for KasSimConfig {
    fn default() -> Self {
        Self {
            max_mail_size: 500 * 1024 * 1024,
            quota: 2 * 1024 * 1024 * 1024,
            max_downloads: 10,
            accounts: Vec::new(),
            data_time_to_live: 90,
        }
    }
}

/// One stored object.
#[derive(Debug, Clone)]
pub struct Stored {
    pub data: Vec<u8>,
    pub recipients: Vec<String>,
    pub message_id: String,
    pub expires: String,
    pub owner: String,
    pub downloads: u32,
}

/// All objects and counters.
#[derive(Debug, Default)]
pub struct Store {
    pub objects: HashMap<String, Stored>,
    pub used: HashMap<String, u64>,
    next: u64,
    /// Statuses forced onto the next `add_Attachment` calls (fault injection).
    pub forced_add: Vec<u16>,
    /// What clients sent, for checking requests against the yaml.
    pub recorded: Vec<RecordedRequest>,
}

/// The shape of one request (no content): enough to validate it against the yaml.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names, lower-cased.
    pub headers: Vec<String>,
    /// `multipart/form-data` field names in order (POST only).
    pub form_fields: Vec<String>,
    /// Header names (lower-cased) of the `attachment` form part.
    pub attachment_headers: Vec<String>,
    /// Whether `Content-Length` equalled the body actually sent.
    pub content_length_exact: bool,
}

impl Store {
    /// A fresh, unguessable-looking id (UUID layout; uniqueness is what matters here).
    pub fn new_id(&mut self, seed: u64) -> String {
        self.next += 1;
        let a = seed ^ self.next.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let b = a.rotate_left(29).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            a as u16 & 0xfff,
            (b >> 48) as u16 & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}
