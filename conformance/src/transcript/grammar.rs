//! The text side of a transcript shared by every protocol: escapes, `+Ns` times, and how the
//! bytes the module emits are shown as expectation lines.

use std::collections::VecDeque;
use std::time::Duration;

/// Appends CRLF to a `X: text` line.
pub(super) fn with_crlf(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.extend_from_slice(b"\r\n");
    v
}

/// Parses `+Ns`.
pub(super) fn parse_secs(s: &str) -> Option<Duration> {
    let n: u64 = s.strip_prefix('+')?.strip_suffix('s')?.parse().ok()?;
    Some(Duration::from_secs(n))
}

/// Decodes `\r`, `\n`, `\t`, `\\` and `\xNN`.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or("short \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?);
                i += 2;
            }
            _ => return Err("bad escape".into()),
        }
        i += 2;
    }
    Ok(out)
}

/// Shows bytes as a transcript would write them: printable ASCII as is, the rest escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Splits bytes into CRLF-terminated lines (`X: text`); anything else is shown escaped
/// (`X~ esc`).
pub(super) fn push_lines(observed: &mut VecDeque<String>, marker: &str, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) if !rest[..i].contains(&b'\r') && !rest[..i].contains(&b'\n') => {
                match std::str::from_utf8(&rest[..i]) {
                    Ok(s) if !s.chars().any(|c| c.is_control()) => {
                        observed.push_back(format!("{marker}: {s}"))
                    }
                    _ => observed.push_back(format!("{marker}~ {}", escape(&rest[..i + 2]))),
                }
                rest = &rest[i + 2..];
            }
            Some(i) => {
                observed.push_back(format!("{marker}~ {}", escape(&rest[..i + 2])));
                rest = &rest[i + 2..];
            }
            None => {
                observed.push_back(format!("{marker}~ {}", escape(rest)));
                rest = &[];
            }
        }
    }
}

/// The connection events both protocols know, with the same words in `E:` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ConnectionEvent {
    /// `connected`
    Connected,
    /// `connect-failed [REASON]`: REASON takes escapes; `connection refused` if absent.
    ConnectFailed(String),
    /// `server-cert-rejected invalid|context CODE|unchecked`: the connection came up, but
    /// the Konnektor did not accept the server's certificate (A_2075-01).
    ServerCertRejected(komle_core::konnektor::ServerCertRejected),
    /// `client-closed`
    ClientClosed,
    /// `upstream-closed`
    UpstreamClosed,
}

impl ConnectionEvent {
    /// The [`Input`](komle_core::proxy_session::Input) this event feeds.
    pub(super) fn into_input(self) -> komle_core::proxy_session::Input<'static> {
        use komle_core::proxy_session::Input;
        match self {
            Self::Connected => Input::UpstreamConnected,
            Self::ConnectFailed(reason) => Input::UpstreamFailed { reason },
            Self::ServerCertRejected(r) => Input::ServerCertificateRejected(r),
            Self::ClientClosed => Input::ClientClosed,
            Self::UpstreamClosed => Input::UpstreamClosed,
        }
    }

    /// `Ok(None)` if `spec` is no connection event (a protocol-specific one, or unknown).
    pub(super) fn parse(spec: &str) -> Result<Option<Self>, String> {
        let (kind, rest) = spec.split_once(' ').unwrap_or((spec, ""));
        Ok(Some(match kind {
            "connected" => Self::Connected,
            "connect-failed" if rest.is_empty() => Self::ConnectFailed("connection refused".into()),
            "connect-failed" => {
                let reason = unescape(rest)?;
                Self::ConnectFailed(
                    String::from_utf8(reason).map_err(|_| "connect-failed reason is no UTF-8")?,
                )
            }
            "server-cert-rejected" => {
                use komle_core::konnektor::ServerCertRejected as R;
                use komle_core::konnektor::server_cert_verdict::NoVerdict;
                Self::ServerCertRejected(match rest.split_once(' ').unwrap_or((rest, "")) {
                    ("invalid", "") => R::Invalid { code: None },
                    ("context", code) => R::ContextRejected {
                        code: code
                            .parse()
                            .map_err(|_| "server-cert-rejected context CODE")?,
                    },
                    ("unchecked", "") => R::NotChecked(NoVerdict::UnreadableAnswer),
                    _ => return Err("server-cert-rejected invalid|context CODE|unchecked".into()),
                })
            }
            "client-closed" => Self::ClientClosed,
            "upstream-closed" => Self::UpstreamClosed,
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let raw = b"a\r\n\\\x00\xff.";
        assert_eq!(unescape(&escape(raw)).unwrap(), raw);
        assert!(unescape("\\q").is_err());
    }

    #[test]
    fn connection_events_parse_with_and_without_reason() {
        assert_eq!(
            ConnectionEvent::parse("connect-failed").unwrap(),
            Some(ConnectionEvent::ConnectFailed("connection refused".into()))
        );
        assert_eq!(
            ConnectionEvent::parse("connect-failed a\\r\\nb").unwrap(),
            Some(ConnectionEvent::ConnectFailed("a\r\nb".into()))
        );
        assert_eq!(ConnectionEvent::parse("opened").unwrap(), None);
    }
}
