//! PEM text (RFC 7468) for files handed to slapd, openssl or the Konnektor simulator.

use base64::Engine;

/// `-----BEGIN <label>-----`, base64 in 64-column lines, `-----END <label>-----`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
