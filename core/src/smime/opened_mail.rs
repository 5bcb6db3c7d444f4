//! The mail delivered to the client after opening a KOM-LE message (KOM-LE-A_2179-01,
//! A_2050-05, A_23165, seed PDF report).
//!
//! Decision: the result is `multipart/mixed` with (1) the original content entity (the inner
//! mail's `Content-*` fields and body: a single part or a whole multipart tree) and (2) the PDF
//! verification report the seed requires. The notes are *appended to the message text* as the
//! spec says (see [`super::text_note`]): „Die Nachricht wurde entschlüsselt.“ (A_2179-01) and,
//! for a `true` result of Tab_Verm_Sig_Prüf (01, 07), its Vermerk „Die Signatur wurde
//! erfolgreich geprüft.“ (A_2050-05). Only a mail without a text part the note can go into
//! gets the note as a text/plain part of its own.
//!
//! A failed check (A_23165) replaces the content with gematik's fixed warning as text/plain,
//! unless [`DeliveryOptions::deliver_original_on_failure`] is set: then the original is
//! delivered with the failure appended to its text. Either way `X-KIM-IntegrityCheckResult`
//! carries the table's ID (or an `X` code). The inner mail's other header fields become the
//! delivered mail's header; any `X-KIM-DecryptionResult`/`X-KIM-IntegrityCheckResult` the sender
//! put in are dropped so they cannot spoof a result.

use super::date;
use super::headers;
use super::in_place::{self, Piece};
use super::integrity::{IntegrityCheckResult, Verification, VerifyResult};
use super::multipart::{self, Part};
use super::outer::push_base64_lines;
use super::report_pdf;
use super::text_note;

/// A_23165's text that replaces the content of a message whose integrity check failed (word
/// for word, including gematik's „eine technisches Ursache“).
pub const SECURITY_WARNING: &str = "Beim Empfang dieser KIM-Nachricht wurde eine Sicherheitsverletzung erkannt. Dies kann eine technisches Ursache haben oder auf eine missbräuchliche Nutzung des KIM-Dienstes hinweisen. Zu Ihrem Schutz wurde der Inhalt dieser Nachricht durch diesen Text ausgetauscht. Bitte kontaktieren Sie den Absender und/oder Ihren Administrator.";

/// A_2179-01's note on every decrypted message.
pub const DECRYPTED_NOTE: &str = "Die Nachricht wurde entschlüsselt.";

/// Behaviour switches for delivering opened messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryOptions {
    /// A_23165's configurable alternative: deliver the decrypted original despite a failed
    /// integrity check (the failure appended to its text, the result in the header). Off by
    /// default, as gemSpec_CM_KOMLE 1.16 requires: the content is replaced by
    /// [`SECURITY_WARNING`]. Sites that must not lose e.g. an eAU confirmation switch it on.
    pub deliver_original_on_failure: bool,
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
    let input = Input {
        outer_header,
        inner,
        result,
        verification,
        detail,
        now,
        options,
    };
    compose(&input, |prefix, pieces, suffix| {
        let len = prefix.len() + pieces.iter().map(|p| p.len()).sum::<usize>() + suffix.len();
        // Room for the POP3 terminator, so the RETR answer is stuffed in this buffer.
        let mut out = Vec::with_capacity(len + 8);
        out.extend_from_slice(prefix);
        for p in pieces {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(suffix);
        out
    })
}

/// [`opened_mail`] built in the original mail's own buffer (the client mail fetched from the
/// KAS): the unchanged ranges of its body stay where they are or move, nothing else is
/// copied ([`super::in_place`]). The delivered bytes are the same as [`opened_mail`]'s.
pub fn opened_mail_in_place(
    outer_header: &[u8],
    mut inner: Vec<u8>,
    result: IntegrityCheckResult,
    verification: Option<&Verification>,
    detail: &str,
    now: i64,
    options: DeliveryOptions,
) -> Vec<u8> {
    let plan = {
        let input = Input {
            outer_header,
            inner: Some(&inner),
            result,
            verification,
            detail,
            now,
            options,
        };
        let base = inner.as_ptr() as usize;
        let end = base + inner.len();
        compose(&input, |prefix, pieces, suffix| {
            let mut plan = Vec::with_capacity(pieces.len() + 2);
            plan.push(Piece::Lit(prefix.to_vec()));
            for p in pieces {
                let at = p.as_ptr() as usize;
                if at >= base && at + p.len() <= end {
                    plan.push(Piece::Src(at - base..at - base + p.len()));
                } else {
                    plan.push(Piece::Lit(p.to_vec()));
                }
            }
            plan.push(Piece::Lit(suffix.to_vec()));
            plan
        })
    };
    let len: usize = plan
        .iter()
        .map(|p| match p {
            Piece::Lit(b) => b.len(),
            Piece::Src(r) => r.len(),
        })
        .sum();
    in_place::grow(&mut inner, len + 8);
    if in_place::assemble(&mut inner, &plan) {
        inner
    } else {
        // Not reachable with the plan `compose` makes; the copying build is the fallback.
        let mail = opened_mail(
            outer_header,
            Some(&inner),
            result,
            verification,
            detail,
            now,
            options,
        );
        zeroize::Zeroize::zeroize(&mut inner);
        mail
    }
}

/// What [`compose`] builds from.
struct Input<'a> {
    outer_header: &'a [u8],
    inner: Option<&'a [u8]>,
    result: IntegrityCheckResult,
    verification: Option<&'a Verification>,
    detail: &'a str,
    now: i64,
    options: DeliveryOptions,
}

/// Lays out the delivered mail and hands it to `finish` as three spans: everything before
/// the content entity, the entity's pieces (ranges of `inner` and the edits between them),
/// and everything after it.
fn compose<R>(input: &Input<'_>, finish: impl FnOnce(&[u8], &[&[u8]], &[u8]) -> R) -> R {
    let Input {
        outer_header,
        inner,
        result,
        verification,
        detail,
        now,
        options,
    } = *input;
    let lines = report_lines(result, verification, detail, now);
    let replace = !result.is_ok() && !options.deliver_original_on_failure;
    let withhold = replace || inner.is_none();
    // What is appended to the text: A_2179-01, then the Vermerk (01/07) or, when a failed
    // check still delivers the original, the table's result.
    let mut note: Vec<&str> = vec![DECRYPTED_NOTE];
    match result.vermerk() {
        Some(v) => note.push(v),
        None => {
            note.push(result.text());
            if !detail.is_empty() {
                note.push(detail);
            }
        }
    }
    let pdf = report_pdf::render(&lines);
    let mut pdf_b64 = Vec::with_capacity(pdf.len() * 4 / 3 + pdf.len() / 38 + 8);
    push_base64_lines(&mut pdf_b64, &pdf);

    let oh = headers::parse(outer_header).ok();
    let ih = inner.and_then(|m| headers::parse(m).ok().map(|h| (m, h)));

    // The content entity (CRLF), annotated; or the A_23165 warning in its place. WHY in
    // pieces: the body of a KAS mail can be hundreds of MB (issue 17); it is written once,
    // straight from `inner` into `out`, with the note as an edit, never copied on the way.
    let mut entity_head = Vec::new();
    let mut crlf_body = Vec::new();
    let mut body: &[u8] = &[];
    if let (Some((m, h)), false) = (&ih, withhold) {
        for f in h
            .fields
            .iter()
            .filter(|f| f.name.to_ascii_lowercase().starts_with("content-"))
        {
            headers::push_crlf(&mut entity_head, &m[f.range.clone()]);
            if !entity_head.ends_with(b"\n") {
                entity_head.extend_from_slice(b"\r\n");
            }
        }
        entity_head.extend_from_slice(b"\r\n");
        body = &m[h.body..];
        if h.eol == headers::Eol::Lf {
            headers::push_crlf(&mut crlf_body, body);
            body = &crlf_body;
        }
    }
    let mut own_note = String::new();
    let edits = if withhold {
        own_note = format!("{SECURITY_WARNING}\r\n\r\n{}\r\n", note.join("\r\n"));
        None
    } else {
        match text_note::text_edits(&entity_head, body, &note) {
            Some(e) => Some(e),
            None => {
                own_note = format!("{}\r\n", note.join("\r\n"));
                Some(Vec::new())
            }
        }
    };
    let pieces: Vec<&[u8]> = match &edits {
        Some(e) => text_note::edited_pieces(&entity_head, body, e),
        None => Vec::new(),
    };

    let mut out =
        Vec::with_capacity(outer_header.len() + inner.map_or(0, |m| m.len().min(64 * 1024)) + 512);
    if let Some(oh) = &oh {
        for f in oh
            .fields
            .iter()
            .filter(|f| TRACE.iter().any(|t| f.name.eq_ignore_ascii_case(t)))
        {
            headers::push_crlf(&mut out, &outer_header[f.range.clone()]);
        }
    }
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

    let mut contents: Vec<&[u8]> = pieces.clone();
    contents.push(own_note.as_bytes());
    contents.push(&pdf_b64);
    let boundary = multipart::boundary(&contents);
    out.extend_from_slice(
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").as_bytes(),
    );
    let mut suffix = Vec::with_capacity(own_note.len() + pdf_b64.len() + 512);
    if edits.is_some() {
        // The annotated entity as one part: its header block, the blank line, its body.
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if !pieces.last().is_some_and(|p| p.ends_with(b"\n")) {
            suffix.extend_from_slice(b"\r\n");
        }
    }
    let mut parts = Vec::new();
    if !own_note.is_empty() {
        parts.push(multipart::text_part(&own_note));
    }
    parts.push(Part {
        headers: "Content-Type: application/pdf; name=\"Pruefbericht.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"Pruefbericht.pdf\"\r\n".into(),
        body: &pdf_b64,
    });
    multipart::push_parts(&mut suffix, &boundary, &parts);
    let built = finish(&out, &pieces, &suffix);
    zeroize::Zeroize::zeroize(&mut crlf_body);
    built
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Verification {
        Verification {
            result: VerifyResult::Valid,
            signer_name: "Praxis".into(),
            telematik_id: None,
            signing_time: None,
            error_code: None,
            error_text: None,
            signature_broken: false,
            path_invalid: false,
            no_verdict: None,
        }
    }

    const OUTER: &[u8] =
        b"Received: from mta\r\nFrom: a@x\r\nTo: b@y\r\nX-KOM-LE-Version: 1.5\r\n\r\n";

    #[test]
    fn a_2179_01_a_2050_05_in_place_build_equals_the_copying_build() {
        let mails: [&[u8]; 8] = [
            b"From: a@x\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n.dot line\r\n",
            b"From: a@x\r\nSubject: ascii, relabelled\r\n\r\nno line end at the end",
            b"From: a@x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>x</p></body></html>\r\n",
            b"From: a@x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<body>h</body>\r\n--b--\r\n",
            b"From: a@x\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n",
            b"From: a@x\nSubject: LF only\n\nline\nline\n",
            b"From: a@x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n",
            b"From: a@x\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nshort\r\n--m\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAAAAAAAAAAAAAA\r\nAAAAAAAAAAAAAAAA\r\n--m--\r\n",
        ];
        let results = [
            IntegrityCheckResult::Valid,
            IntegrityCheckResult::ValidStatusUnknown,
            IntegrityCheckResult::CertificatePathInvalid,
        ];
        for mail in mails {
            for result in results {
                for deliver_original_on_failure in [false, true] {
                    let options = DeliveryOptions {
                        deliver_original_on_failure,
                    };
                    let v = valid();
                    let copied = opened_mail(
                        OUTER,
                        Some(mail),
                        result,
                        Some(&v),
                        "",
                        1_700_000_000,
                        options,
                    );
                    let in_place = opened_mail_in_place(
                        OUTER,
                        mail.to_vec(),
                        result,
                        Some(&v),
                        "",
                        1_700_000_000,
                        options,
                    );
                    assert_eq!(
                        String::from_utf8_lossy(&in_place),
                        String::from_utf8_lossy(&copied),
                        "{result:?}"
                    );
                    assert!(
                        in_place.capacity() >= in_place.len() + 3,
                        "room for `.` CRLF"
                    );
                }
            }
        }
    }
}
