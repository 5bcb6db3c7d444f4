//! HTTPS client of the KOM-LE Attachment Service (I_Attachment_Service 2.4) and of the
//! account manager's getLimits (I_AccountLimit_Service), over mutual TLS (A_19362, A_19368).
//!
//! Blocking (ureq) like [`crate::konnektor_http`]: the runtimes call it on the `blocking`
//! pool. The client identity is handed in as a rustls certificate chain and key (the key
//! store builds it; tests take it from the KAS simulator). CM_KAS_TIMEOUT (Tab_Konf_Param,
//! default 30 s) is an *inactivity* timeout: it bounds connecting and every single socket
//! read and write, not the whole transfer, so a 500 MB upload on a slow line is fine while a
//! silent KAS is given up after 30 s.
//!
//! Streaming: [`KasClient::add_attachment`] reads the encrypted mail data from a `Read`
//! (the mail data sealed in place as it is read, [`KasClient::store_mail_data`]) and never holds it whole;
//! `Content-Length` is the exact total of the multipart body, computed up front (A_22427-01).
//! [`KasClient::read_attachment`] returns the body as a `Read` for the core's
//! `MailDataOpener`.
//!
//! Nothing here logs or prints mail data, keys or credentials.

use std::fmt;
use std::io::{self, Cursor, Read};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use komle_core::kas::{
    AccountLimits, GcmIv, KasKey, KasOpenError, KasSendError, UploadFailure,
    attachment::valid_link, stored_size,
};
use komle_core::secret::Password;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::kas_seal_pipeline::{SealUploadError, seal_while_uploading};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

/// CM_KAS_TIMEOUT default (Tab_Konf_Param): 30 seconds of inactivity.
pub const DEFAULT_KAS_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest JSON answer read (sharedLink, getLimits, error objects).
const MAX_JSON: u64 = 64 * 1024;

/// How to reach the KAS.
pub struct KasClientSettings {
    /// `https://<SRV host>:<SRV port><TXT base path>`, e.g. `https://kas:443/attachments/v2.4`.
    pub base_url: String,
    /// CM_KAS_TIMEOUT.
    pub timeout: Duration,
    /// Trust anchors for the KAS's server certificate; empty: the webpki roots.
    pub roots: Vec<CertificateDer<'static>>,
    /// The Clientmodul's certificate chain and key for mutual TLS.
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key: PrivateKeyDer<'static>,
    /// Basic credentials of the sender's mail account for add/delete (the yaml's
    /// KIMBasicAuth), if the KAS asks for them.
    pub basic: Option<(String, Password)>,
}

impl fmt::Debug for KasClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KasClientSettings")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("roots", &self.roots.len())
            .field("basic", &self.basic.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a KAS call failed. Carries no body text of the KAS (it may echo request content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KasError {
    /// Nothing within CM_KAS_TIMEOUT, refused, dropped, TLS failed.
    Transport(String),
    /// An HTTP status the operation does not treat as success.
    Status(u16),
    /// A success status with an unusable body (no sharedLink, not JSON, no length).
    BadAnswer,
    /// The link is not an https URL.
    BadLink,
    /// A form value (Message-ID, recipient, expiry) is empty or contains a line break and
    /// would corrupt the multipart body.
    BadInput,
}

impl fmt::Display for KasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "KAS: {e}"),
            Self::Status(s) => write!(f, "KAS: HTTP {s}"),
            Self::BadAnswer => f.write_str("KAS: unusable answer"),
            Self::BadLink => f.write_str("KAS: link is not an https URL"),
            Self::BadInput => f.write_str("KAS: form value with a line break"),
        }
    }
}

impl std::error::Error for KasError {}

impl KasError {
    /// The send path's verdict: 507 → 521 (A_22419-01), everything else 451 (A_19363-03).
    pub fn send_error(&self) -> KasSendError {
        match self {
            Self::Status(507) => KasSendError::QuotaExceeded,
            Self::Status(s) => KasSendError::UploadFailed(UploadFailure::Status(*s)),
            Self::BadAnswer | Self::BadLink => KasSendError::UploadFailed(UploadFailure::NoLink),
            Self::Transport(_) | Self::BadInput => {
                KasSendError::UploadFailed(UploadFailure::Transport)
            }
        }
    }

    /// The receive path's verdict: 429 → 4013 (A_22412-01), everything else 4006
    /// (A_19370-04).
    pub fn open_error(&self) -> KasOpenError {
        match self {
            Self::Status(429) => KasOpenError::TooManyDownloads,
            _ => KasOpenError::DownloadFailed,
        }
    }
}

fn transport(e: ureq::Error) -> KasError {
    KasError::Transport(e.to_string())
}

/// What `add_Attachment` sends besides the data.
pub struct Upload<'a> {
    /// Message-ID of the KIM mail.
    pub message_id: &'a str,
    /// Every recipient (one form part each).
    pub recipients: &'a [String],
    /// RFC 5322 date-time after which the KAS deletes the data (send time + dataTimeToLive).
    pub expires: &'a str,
    /// Exact number of bytes `data` yields: [`stored_size`] of the plaintext size.
    pub data_len: u64,
    pub data: &'a mut (dyn Read + Send),
}

/// A download in progress: the body as a reader and the announced length.
pub struct KasDownload {
    pub length: Option<u64>,
    reader: ureq::BodyReader<'static>,
}

impl Read for KasDownload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// The KAS client. Cheap to clone (the agent and its connection pool are shared).
#[derive(Clone)]
pub struct KasClient {
    agent: ureq::Agent,
    base_url: String,
    authorization: Option<Arc<Password>>,
}

impl fmt::Debug for KasClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KasClient")
            .field("base_url", &self.base_url)
            .field("basic_auth", &self.authorization.is_some())
            .finish()
    }
}

/// A fresh multipart boundary; must not occur in the form's text fields (the binary part is
/// delimited by Content-Length on our side and by the boundary on the KAS's: 40 random-looking
/// hex digits derived from the key-independent IV make a collision in ciphertext negligible).
fn boundary(iv_like: &[u8]) -> String {
    let hex: String = iv_like.iter().map(|b| format!("{b:02x}")).collect();
    format!("komle-kas-{hex}")
}

impl KasClient {
    /// Builds the agent: mutual TLS with the given identity, CM_KAS_TIMEOUT per I/O step.
    ///
    /// # Errors
    /// [`KasError::Transport`] if the client key cannot be used.
    pub fn new(settings: KasClientSettings) -> Result<Self, KasError> {
        let roots = if settings.roots.is_empty() {
            RootCerts::WebPki
        } else {
            RootCerts::Specific(Arc::new(
                settings
                    .roots
                    .iter()
                    .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                    .collect(),
            ))
        };
        let chain: Vec<Certificate<'static>> = settings
            .client_chain
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        // ureq takes keys as DER with a kind it does not export, or as PEM: go through PEM,
        // held in a zeroising string.
        let label = match &settings.client_key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            PrivateKeyDer::Pkcs8(_) => "PRIVATE KEY",
            _ => return Err(KasError::Transport("unsupported client key format".into())),
        };
        let body = Password::new(
            base64::engine::general_purpose::STANDARD.encode(settings.client_key.secret_der()),
        );
        let pem = Password::new(format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            body.expose()
        ));
        drop(body);
        let key = PrivateKey::from_pem(pem.expose().as_bytes())
            .map_err(|e| KasError::Transport(format!("client key: {e}")))?;
        let tls = TlsConfig::builder()
            .root_certs(roots)
            .client_cert(Some(ClientCert::new_with_certs(&chain, key)))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let t = Some(settings.timeout);
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            .http_status_as_error(false)
            .timeout_connect(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            .user_agent("komle-cm")
            .max_idle_connections_per_host(2)
            .build()
            .new_agent();
        let authorization = settings.basic.map(|(user, password)| {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", password.expose()));
            Arc::new(Password::new(format!("Basic {token}")))
        });
        Ok(Self {
            agent,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// The same client (agent, identity, credentials) for another KAS base URL: the one DNS-SD
    /// found for this sender (A_19361-01).
    pub fn with_base_url(&self, base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            ..self.clone()
        }
    }

    /// `add_Attachment` (A_19363-03): uploads the encrypted mail data; returns the
    /// `sharedLink` of a 201 answer (A_19364-02).
    ///
    /// # Errors
    /// [`KasError`]; map with [`KasError::send_error`] (507 → 521, else 451).
    pub fn add_attachment(&self, upload: Upload<'_>) -> Result<String, KasError> {
        let unsafe_value = |v: &str| v.is_empty() || v.contains(['\r', '\n']);
        if unsafe_value(upload.message_id)
            || unsafe_value(upload.expires)
            || upload.recipients.is_empty()
            || upload.recipients.iter().any(|r| unsafe_value(r))
        {
            return Err(KasError::BadInput);
        }
        let mut seed = [0u8; 20];
        for (i, b) in upload.message_id.bytes().enumerate() {
            seed[i % 20] ^= b;
        }
        seed[..8].copy_from_slice(&upload.data_len.to_be_bytes());
        let boundary = boundary(&seed);
        let mut head = String::new();
        let field = |out: &mut String, name: &str, value: &str| {
            out.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        };
        field(&mut head, "messageID", upload.message_id);
        for r in upload.recipients {
            field(&mut head, "recipients", r);
        }
        field(&mut head, "expires", upload.expires);
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"attachment.enc\"\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            upload.data_len
        ));
        let tail = format!("\r\n--{boundary}--\r\n");
        // A_22427-01: the whole body's length, exact, before the first byte.
        let total = head.len() as u64 + upload.data_len + tail.len() as u64;
        let mut body = Cursor::new(head.into_bytes())
            .chain(upload.data.take(upload.data_len))
            .chain(Cursor::new(tail.into_bytes()));
        let mut request = self
            .agent
            .post(format!("{}/attachment/", self.base_url))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("Content-Length", total.to_string())
            .header("Accept", "application/json");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth.expose());
        }
        let mut response = request
            .send(ureq::SendBody::from_reader(&mut body))
            .map_err(transport)?;
        let status = response.status().as_u16();
        if status != 201 {
            return Err(KasError::Status(status));
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(transport)?;
        let answer: serde_json::Value =
            serde_json::from_slice(&text).map_err(|_| KasError::BadAnswer)?;
        let link = answer["sharedLink"]
            .as_str()
            .ok_or(KasError::BadAnswer)?
            .to_owned();
        if !valid_link(&link) {
            return Err(KasError::BadLink);
        }
        Ok(link)
    }

    /// HEAD on the link: the stored size, before the download (A_19370-04 with the 2.4
    /// HEAD operation), so the runtime can refuse absurd sizes and plan the RETR answer.
    ///
    /// # Errors
    /// [`KasError`]; map with [`KasError::open_error`].
    pub fn head_attachment(&self, link: &str, recipient: &str) -> Result<u64, KasError> {
        if !valid_link(link) {
            return Err(KasError::BadLink);
        }
        let response = self
            .agent
            .head(link)
            .header("recipient", recipient)
            .call()
            .map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(KasError::Status(status));
        }
        response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .ok_or(KasError::BadAnswer)
    }

    /// `read_Attachment` (A_19370-04): the encrypted mail data as a stream, at most `limit`
    /// bytes (the structure's `size` + [`komle_core::kas::cipher::OVERHEAD`]).
    ///
    /// # Errors
    /// [`KasError`]; map with [`KasError::open_error`] (429 → 4013, else 4006).
    pub fn read_attachment(
        &self,
        link: &str,
        recipient: &str,
        limit: u64,
    ) -> Result<KasDownload, KasError> {
        if !valid_link(link) {
            return Err(KasError::BadLink);
        }
        let response = self
            .agent
            .get(link)
            .header("recipient", recipient)
            .header("Accept", "application/octet-stream")
            .call()
            .map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(KasError::Status(status));
        }
        let length = response.body().content_length();
        if length.is_some_and(|l| l > limit) {
            return Err(KasError::BadAnswer);
        }
        let reader = response
            .into_body()
            .into_with_config()
            .limit(limit)
            .reader();
        Ok(KasDownload { length, reader })
    }

    /// `delete_MailData`: removes an object the sender stored (e.g. after the MTA refused the
    /// KOM-LE message, so no orphan stays on the KAS until `expires`).
    ///
    /// # Errors
    /// [`KasError`].
    pub fn delete_attachment(&self, link: &str) -> Result<(), KasError> {
        if !valid_link(link) {
            return Err(KasError::BadLink);
        }
        let mut request = self.agent.delete(link);
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth.expose());
        }
        let status = request.call().map_err(transport)?.status().as_u16();
        if status == 200 {
            Ok(())
        } else {
            Err(KasError::Status(status))
        }
    }

    /// `getLimits` at the account manager (A_22416): `url` is its `…/AccountLimit/v1.1/limit`.
    ///
    /// # Errors
    /// [`KasError`] for transport, status or a body that is not an AccountLimit.
    pub fn get_limits(&self, url: &str) -> Result<AccountLimits, KasError> {
        let mut request = self.agent.get(url).header("Accept", "application/json");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth.expose());
        }
        let mut response = request.call().map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(KasError::Status(status));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(transport)?;
        AccountLimits::from_json(&body).map_err(|_| KasError::BadAnswer)
    }
}

/// What the send path knows about the mail besides its data.
#[derive(Debug, Clone, Copy)]
pub struct MailMeta<'a> {
    pub message_id: &'a str,
    pub recipients: &'a [String],
    /// [`komle_core::kas::expires`] of the send time.
    pub expires: &'a str,
}

impl KasClient {
    /// The send path's one call after DATA: encrypts the processed client mail in place and
    /// uploads it as the stored object (`IV || C || tag`) at the same time, the plaintext hashed
    /// on a second thread just ahead ([`crate::kas_seal_pipeline`]); returns the
    /// KIM-Attachment structure for [`komle_core::kas::kas_message`].
    ///
    /// WHY the mail is complete before the upload starts: A_22427-01 demands the exact
    /// Content-Length of the whole request, and the client's mail size is known only at the
    /// end of DATA (ESMTP SIZE is an estimate). So one mail is held once in memory (plaintext,
    /// turned into ciphertext in place chunk by chunk as the upload reads it).
    ///
    /// # Errors
    /// [`KasSendError`] with the spec's reply: 507 → 521, everything else 451; both RSET.
    pub fn store_mail_data(
        &self,
        meta: MailMeta<'_>,
        data: &mut [u8],
        key: &KasKey,
        iv: GcmIv,
    ) -> Result<komle_core::kas::KimAttachment, KasSendError> {
        let (link, sealed) = seal_while_uploading(data, key, iv, |body, data_len| {
            self.add_attachment(Upload {
                message_id: meta.message_id,
                recipients: meta.recipients,
                expires: meta.expires,
                data_len,
                data: body,
            })
        })
        .map_err(|e| match e {
            SealUploadError::Upload(e) => e.send_error(),
            SealUploadError::Incomplete | SealUploadError::Hasher => {
                KasSendError::UploadFailed(UploadFailure::Transport)
            }
        })?;
        Ok(komle_core::kas::KimAttachment::new(
            link,
            key.clone(),
            sealed.hash,
            sealed.size,
        ))
    }

    /// The RETR path's one call: HEAD (the stored size must be `size` + IV + tag), then
    /// `read_Attachment`, decrypting chunk by chunk into `sink`; returns the plaintext size.
    ///
    /// `sink` receives plaintext *before* the tag and hash are verified (they come last). The
    /// caller must treat what it wrote as provisional: on `Err` it discards it (or, when it
    /// already streamed to the POP3 client, closes the connection without the final `.`), and
    /// delivers the matching error mail the next time.
    ///
    /// # Errors
    /// [`KasOpenError`]: 4006 download, 4013 too many downloads, 4007 decryption, 4012 hash.
    pub fn fetch_into(
        &self,
        attachment: &komle_core::kas::KimAttachment,
        recipient: &str,
        sink: &mut dyn io::Write,
    ) -> Result<u64, KasOpenError> {
        let expected = stored_size(attachment.size);
        let announced = self
            .head_attachment(&attachment.link, recipient)
            .map_err(|e| e.open_error())?;
        if announced != expected {
            return Err(KasOpenError::DownloadFailed);
        }
        let mut body = self
            .read_attachment(&attachment.link, recipient, expected)
            .map_err(|e| e.open_error())?;
        let mut opener = komle_core::kas::MailDataOpener::new(attachment);
        let mut buf = vec![0u8; 64 * 1024];
        let mut plain = Vec::with_capacity(buf.len() + 32);
        let mut written = 0u64;
        loop {
            let n = body
                .read(&mut buf)
                .map_err(|_| KasOpenError::DownloadFailed)?;
            if n == 0 {
                break;
            }
            plain.clear();
            opener.update(&buf[..n], &mut plain)?;
            sink.write_all(&plain)
                .map_err(|_| KasOpenError::DownloadFailed)?;
            written += plain.len() as u64;
        }
        opener.finish()?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_with_line_breaks_are_refused_before_anything_is_sent() {
        let (chain, key) = {
            let tls = komle_conformance::kas_sim::KasTls::generate().expect("tls");
            tls.client_identity()
        };
        let c = KasClient::new(KasClientSettings {
            // Nothing listens here: a request that got out would fail with Transport.
            base_url: "https://127.0.0.1:9/attachments/v2.4".into(),
            timeout: Duration::from_millis(200),
            roots: Vec::new(),
            client_chain: chain,
            client_key: key,
            basic: None,
        })
        .expect("builds");
        let rcpt = ["b@y".to_owned()];
        for (id, expires, recipients) in [
            (
                "<a@b>\r\nX-Evil: 1",
                "Thu, 1 Jan 2026 00:00:00 +0000",
                &rcpt[..],
            ),
            ("<a@b>", "Thu\n", &rcpt[..]),
            ("<a@b>", "Thu, 1 Jan 2026 00:00:00 +0000", &[][..]),
        ] {
            let mut data: &[u8] = b"x";
            let err = c
                .add_attachment(Upload {
                    message_id: id,
                    recipients,
                    expires,
                    data_len: 1,
                    data: &mut data,
                })
                .expect_err("refused");
            assert_eq!(err, KasError::BadInput);
            assert!(err.send_error().reply().starts_with(b"451 "));
        }
    }

    #[test]
    fn a_22419_507_maps_to_521_and_429_to_4013() {
        assert_eq!(
            KasError::Status(507).send_error(),
            KasSendError::QuotaExceeded
        );
        assert!(
            KasError::Status(507)
                .send_error()
                .reply()
                .starts_with(b"521 ")
        );
        assert!(
            KasError::Status(500)
                .send_error()
                .reply()
                .starts_with(b"451 ")
        );
        assert!(
            KasError::Transport("x".into())
                .send_error()
                .reply()
                .starts_with(b"451 ")
        );
        assert_eq!(
            KasError::Status(429).open_error(),
            KasOpenError::TooManyDownloads
        );
        assert_eq!(
            KasError::Status(404).open_error(),
            KasOpenError::DownloadFailed
        );
    }
}
