//! KIM 1.5 large messages through the KOM-LE Attachment Service (KAS), gemSpec_CM_KOMLE §3.2
//! (A_19355-01 … A_19374-03, A_22341, A_22416, A_22419-01, A_22427-01, A_23467, A_23512).
//!
//! Sans-IO like the rest of the core: the runtime draws key and IV, talks HTTPS to the KAS and
//! feeds the bytes; this module decides, encrypts, hashes, builds and checks.
//!
//! - [`size_decision`]: 15 MiB → Konnektor or KAS, `maxMailSize` → X.3.4.
//! - [`account_limits`]: the getLimits answer and its 24 h cache entry (A_22416).
//! - [`kas_parts`]: streaming scan for `Content-Disposition: x-kas` parts (A_22341 on send,
//!   A_19369-02 on receive).
//! - [`cipher`]: AES-256-GCM, streamed, `IV || C || tag` (A_19358-01, A_19360-02).
//! - [`mail_data`]: cipher + SHA-256 + size in one pass ([`MailDataSealer`],
//!   [`MailDataOpener`]).
//! - [`attachment`]: the KIM-Attachment JSON `{link, k, hash, size}` (A_19359-07).
//! - [`kom_le_body`]: the small KOM-LE message carrying it (A_19359-07, A_23467).
//! - [`receive`]: opt-in check and 4018 mail (A_23512), the structure in the decrypted
//!   message, the error mails of the download path.
//! - [`removed_notice`]: the DSN naming recipients removed for lack of the opt-in (A_19356-06).
//! - [`error`]: the typed failures with the spec's SMTP replies and error codes.
//!
//! Memory: nothing here holds more than one chunk of mail data plus 16–32 bytes of cipher
//! state. On RETR the plaintext is released before the GCM tag and the hash are checked (they
//! are at the end), so a mail must not reach the POP3 client before [`MailDataOpener::finish`]
//! succeeded ("never a half mail"). The runtime therefore keeps the decrypted client mail once
//! and builds the delivered mail in that same buffer
//! ([`crate::smime::opened_mail::opened_mail_in_place`]), dot-stuffed in place
//! ([`crate::pop3::dot_stuff_in_place`]): about 1x the mail, and the exact `+OK n octets` of
//! what the client receives is known before the first byte goes out. Why not streamed, and
//! what the octet count and LIST show: LIMITS.md, "Large messages via the KAS".

pub mod account_limits;
pub mod attachment;
pub mod cipher;
pub mod error;
pub mod kas_link;
pub mod kas_parts;
pub mod kom_le_body;
pub mod mail_data;
pub mod receive;
pub mod removed_notice;
pub mod size_decision;

pub use account_limits::{AccountLimits, CachedLimits, expires};
pub use attachment::{AttachmentError, KimAttachment, MailDataHash};
pub use cipher::{GcmDecryptor, GcmEncryptor, GcmIv, KasKey};
pub use error::{KasOpenError, KasSendError, UploadFailure};
pub use kas_link::KasLink;
pub use kas_parts::{KasPartScanner, KasParts};
pub use kom_le_body::{X_KIM_KAS_SIZE, kas_message, x_kim_kas_size_field};
pub use mail_data::{MailDataOpener, MailDataSealer, Sealed, stored_size};
pub use receive::{
    DOWNLOAD_FAILED_SUBJECT, LARGE_MESSAGES_NOT_ENABLED_SUBJECT, check_opt_in, kas_content,
    large_messages_not_enabled_mail, split_large_message_recipients,
};
pub use size_decision::{KONNEKTOR_LIMIT, SendRoute, route};
