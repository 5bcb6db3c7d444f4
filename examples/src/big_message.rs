//! The large-message figure of komle-load (issue 9: "one 25 MB message end to end through
//! komle-cm vs. straight to the MTA"): the mail, a plain message as big as the protected one,
//! and one timed SMTP transaction.
//!
//! WHY two baselines: komle-cm hands the MTA the protected (outer) message, base64 of the
//! signed and encrypted mail, about 1.37x the size of what the client sent. "Straight, same
//! mail" is what a client without KOM-LE pays; "straight, protected size" also moves the
//! bigger message over the last hop, so its ratio isolates what the proxy itself adds
//! (receiving, SOAP over HTTPS, building the outer message).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use komle_core::sasl::plain;
use komle_core::secret::Password;

use crate::load;

const LINE: &[u8] = b"Befund Zeile mit etwas Text, damit die Nachricht gross wird 0123456789\r\n";

/// A plain-text mail of exactly `size` bytes (headers included) from `from` to `to`, CRLF
/// lines, no line starting with a dot (so it needs no dot-stuffing).
pub fn mail_of_size(from: &str, to: &str, size: usize) -> Vec<u8> {
    let mut m =
        format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: Grosser Befund\r\n\r\n").into_bytes();
    while m.len() + LINE.len() <= size {
        m.extend_from_slice(LINE);
    }
    let rest = size.saturating_sub(m.len() + 2);
    m.extend(std::iter::repeat_n(b'x', rest));
    m.extend_from_slice(b"\r\n");
    m
}

/// CMS SignedData + AuthEnvelopedData + MIME headers around the mail: certificates, the
/// recipient-emails attribute, RecipientInfos; a few KiB whatever the mail's size.
const CMS_OVERHEAD: usize = 6 * 1024;

/// The approximate size of the protected message komle-cm makes of a `mail_len`-byte mail:
/// base64 (4/3) in 76-column CRLF lines (78/76) of the mail plus `CMS_OVERHEAD` (6 KiB).
/// `tests/load.rs` checks it against what the proxy really delivers.
pub fn protected_size_estimate(mail_len: usize) -> usize {
    (mail_len + CMS_OVERHEAD).div_ceil(3) * 4 / 76 * 78
}

/// A plain message of about the protected size: headers and a base64 body in 76-column
/// lines, like the outer KOM-LE message, but nothing for the proxy to do.
pub fn mail_of_protected_size(from: &str, to: &str, mail_len: usize) -> Vec<u8> {
    let target = protected_size_estimate(mail_len);
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Gleich gross wie geschuetzt\r\n\
MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let raw: Vec<u8> = (0..(target * 3 / 4)).map(|i| (i % 251) as u8).collect();
    let b64 = STANDARD.encode(raw);
    for chunk in b64.as_bytes().chunks(76) {
        if m.len() >= target {
            break;
        }
        m.extend_from_slice(chunk);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// One SMTP transaction (TLS connect, EHLO, AUTH, MAIL, RCPT, DATA, the mail, final reply);
/// returns the wall time to the final `250`.
pub fn timed_send(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    login: &str,
    password: &str,
    from: &str,
    to: &str,
    mail: &[u8],
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut io = load::connect(addr, tls)?;
    let auth = plain::encode_response(login, &Password::new(password));
    for (cmd, expect) in [
        ("EHLO load".to_owned(), "250"),
        (format!("AUTH PLAIN {auth}"), "235"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_owned(), "354"),
    ] {
        load::command(&mut io, &cmd, expect, cmd.split(' ').next().unwrap_or(""))?;
    }
    let w = io.get_mut();
    w.write_all(mail).map_err(|e| e.to_string())?;
    w.write_all(b".\r\n").map_err(|e| e.to_string())?;
    w.flush().map_err(|e| e.to_string())?;
    let r = load::read_reply(&mut io)?;
    let took = started.elapsed();
    if !r.starts_with("250") {
        return Err(format!("final dot: {}", r.trim_end()));
    }
    let _ = io.get_mut().write_all(b"QUIT\r\n");
    Ok(took)
}

/// The timed passes of one kind (straight, through komle-cm ...): wall times and komle-cm's
/// peak-RSS growth (KiB) per pass, and what failed.
#[derive(Default)]
pub struct Passes {
    pub times: Vec<Duration>,
    pub peak_growth_kib: Vec<u64>,
    pub failures: Vec<String>,
}

impl Passes {
    /// One timed pass with the peak RSS of process `pid` reset before it
    /// ([`crate::machine::reset_peak`]), so the growth belongs to this pass.
    pub fn run(&mut self, pid: u32, send: impl FnOnce() -> Result<Duration, String>) {
        crate::machine::reset_peak(pid);
        let before = crate::machine::rss_and_peak_kib(pid).map_or(0, |(rss, _)| rss);
        match send() {
            Ok(t) => {
                self.times.push(t);
                let peak = crate::machine::rss_and_peak_kib(pid).map_or(0, |(_, peak)| peak);
                self.peak_growth_kib.push(peak.saturating_sub(before));
            }
            Err(e) => self.failures.push(e),
        }
    }

    /// The median peak-RSS growth of the passes (KiB).
    pub fn median_growth_kib(&self) -> u64 {
        let mut v = self.peak_growth_kib.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }
}

/// The median of `v` (upper median for an even count).
pub fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mails_have_the_asked_size_and_no_leading_dots() {
        let m = mail_of_size("a@x", "b@y", 100_003);
        assert_eq!(m.len(), 100_003);
        assert!(m.ends_with(b"\r\n"));
        assert!(!m.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."));
        let p = mail_of_protected_size("a@x", "b@y", 100_000);
        let want = protected_size_estimate(100_000);
        assert!(p.len().abs_diff(want) < 200, "{} vs {want}", p.len());
        assert!((want as f64 / 100_000.0 - 1.37).abs() < 0.1);
    }
}
