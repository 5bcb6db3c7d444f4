//! The mail delivered to the client after opening a KOM-LE message (A_2179, A_2050, seed PDF).
//!
//! Decision: the result is always `multipart/mixed` with (1) a text/plain note, (2) the original
//! content entity (the inner mail's `Content-*` fields and body, unchanged: a single part or a
//! whole multipart tree) and (3) the PDF verification report. Appending text to the client's own
//! text part would mean re-encoding it (charsets, transfer encodings, HTML alternatives) and
//! breaks for non-text mails; wrapping works for every mail and keeps the original bytes intact.
//! The inner mail's other header fields become the delivered mail's header; any
//! `X-KIM-DecryptionResult`/`X-KIM-IntegrityCheckResult` the sender put in are dropped so they
//! cannot spoof a result.

use super::date;
use super::headers;
use super::integrity::{IntegrityCheckResult, Verification, VerifyResult};
use super::multipart::{self, Part};
use super::outer::push_base64_lines;
use super::report_pdf;

/// Behaviour switches for delivering opened messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryOptions {
    /// When the integrity check fails, replace the original content with a security warning
    /// (later gemSpec versions) instead of delivering it with the failure stated (the seed).
    pub withhold_on_failure: bool,
}

/// Trace fields kept from the outer message (NOTES.md: keep `Return-Path` and `Received`).
const TRACE: [&str; 2] = ["Return-Path", "Received"];

/// Header fields the delivered mail's header never takes from the inner mail.
fn dropped(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("content-")
        || n == "mime-version"
        || n == "x-kim-decryptionresult"
        || n == "x-kim-integritycheckresult"
        || n == "return-path"
        || n == "received"
}

/// Text lines of the note and the PDF.
pub fn report_lines(
    result: IntegrityCheckResult,
    v: Option<&Verification>,
    detail: &str,
    now: i64,
) -> Vec<String> {
    let mut lines = vec!["KOM-LE Prüfbericht".to_owned(), String::new()];
    lines.push("Die Nachricht wurde entschlüsselt.".to_owned());
    lines.push(result.text().to_owned());
    if !detail.is_empty() {
        lines.push(detail.to_owned());
    }
    lines.push(String::new());
    if let Some(v) = v {
        lines.push(format!("Signiert von: {}", v.signer_name));
        lines.push(format!(
            "Telematik-ID: {}",
            v.telematik_id.as_deref().unwrap_or("unbekannt")
        ));
        lines.push(format!(
            "Signaturzeitpunkt: {}",
            v.signing_time.as_deref().unwrap_or("unbekannt")
        ));
        let r = match v.result {
            VerifyResult::Valid => "VALID",
            VerifyResult::Invalid => "INVALID",
            VerifyResult::Inconclusive => "INCONCLUSIVE",
        };
        lines.push(format!("Prüfergebnis des Konnektors: {r}"));
        if let Some(code) = v.error_code {
            lines.push(format!("Fehlercode des Konnektors: {code}"));
        }
        if let Some(t) = &v.error_text {
            lines.push(format!("Fehlertext des Konnektors: {t}"));
        }
    }
    lines.push(format!("X-KIM-IntegrityCheckResult: {}", result.code()));
    lines.push(format!("Geprüft am: {}", date::rfc5322(now)));
    lines
}

/// Builds the delivered mail. `outer_header` is the received message's header block (for the
/// trace fields and, when `inner` is `None`, for the addressing), `inner` the original mail.
pub fn opened_mail(
    outer_header: &[u8],
    inner: Option<&[u8]>,
    result: IntegrityCheckResult,
    verification: Option<&Verification>,
    detail: &str,
    now: i64,
    options: DeliveryOptions,
) -> Vec<u8> {
    let lines = report_lines(result, verification, detail, now);
    let mut note = lines[2..].join("\r\n");
    note.push_str("\r\n");
    let withhold = !result.is_ok() && options.withhold_on_failure;
    if withhold {
        note.push_str("\r\nSICHERHEITSWARNUNG: Der Inhalt der Nachricht wurde wegen der fehlgeschlagenen Prüfung nicht zugestellt.\r\n");
    }
    let pdf = report_pdf::render(&lines);
    let mut pdf_b64 = Vec::with_capacity(pdf.len() * 4 / 3 + pdf.len() / 38 + 8);
    push_base64_lines(&mut pdf_b64, &pdf);

    let cap = outer_header.len() + inner.map_or(0, <[u8]>::len) + pdf_b64.len() + note.len() + 1024;
    let mut out = Vec::with_capacity(cap);
    let oh = headers::parse(outer_header).ok();
    if let Some(oh) = &oh {
        for f in oh
            .fields
            .iter()
            .filter(|f| TRACE.iter().any(|t| f.name.eq_ignore_ascii_case(t)))
        {
            headers::push_crlf(&mut out, &outer_header[f.range.clone()]);
        }
    }
    let ih = inner.and_then(|m| headers::parse(m).ok().map(|h| (m, h)));
    match &ih {
        Some((m, h)) => {
            for f in h.fields.iter().filter(|f| !dropped(&f.name)) {
                headers::push_crlf(&mut out, &m[f.range.clone()]);
                if !out.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        None => {
            if let Some(oh) = &oh {
                for f in oh.fields.iter().filter(|f| !dropped(&f.name)) {
                    headers::push_crlf(&mut out, &outer_header[f.range.clone()]);
                }
            }
        }
    }
    out.extend_from_slice(b"X-KIM-DecryptionResult: 00\r\n");
    out.extend_from_slice(
        format!(
            "X-KIM-IntegrityCheckResult: {}\r\nMIME-Version: 1.0\r\n",
            result.code()
        )
        .as_bytes(),
    );

    let mut content_headers = String::new();
    let mut content_body: &[u8] = &[];
    let mut converted;
    if let (Some((m, h)), false) = (&ih, withhold) {
        for f in h
            .fields
            .iter()
            .filter(|f| f.name.to_ascii_lowercase().starts_with("content-"))
        {
            let mut raw = Vec::new();
            headers::push_crlf(&mut raw, &m[f.range.clone()]);
            if !raw.ends_with(b"\n") {
                raw.extend_from_slice(b"\r\n");
            }
            content_headers.push_str(&String::from_utf8_lossy(&raw));
        }
        content_body = &m[h.body..];
        if h.eol == headers::Eol::Lf {
            converted = Vec::with_capacity(content_body.len() + content_body.len() / 32);
            headers::push_crlf(&mut converted, content_body);
            content_body = &converted;
        }
    }
    let boundary = multipart::boundary(&[content_body, note.as_bytes(), &pdf_b64]);
    let mut parts = vec![multipart::text_part(&note)];
    if !content_headers.is_empty() || !content_body.is_empty() {
        parts.push(Part {
            headers: content_headers,
            body: content_body,
        });
    }
    parts.push(Part {
        headers: "Content-Type: application/pdf; name=\"Pruefbericht.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"Pruefbericht.pdf\"\r\n".into(),
        body: &pdf_b64,
    });
    multipart::push_multipart(&mut out, &boundary, &parts);
    out
}
