//! A minimal LMTP client (RFC 2033) for putting messages into Dovecot through its unix socket.
//!
//! WHY next to raw Maildir writes: delivering through LMTP exercises Dovecot's own delivery path
//! (indexes, `Return-Path`/`Delivered-To` headers) exactly as mail from Postfix would arrive,
//! without depending on Postfix being up (tests that stop the SMTP side still get mail).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::error::{Result, ServerError};

/// Delivers `message` for `recipient` over the LMTP socket at `socket`. Line endings are
/// normalised to CRLF and leading dots stuffed, as the protocol requires.
pub fn deliver(socket: &Path, recipient: &str, message: &[u8]) -> Result<()> {
    if recipient.contains(['<', '>', '\r', '\n']) {
        return Err(ServerError::InvalidInput(format!(
            "recipient {recipient:?}"
        )));
    }
    let stream = UnixStream::connect(socket).map_err(ServerError::io_path("connecting", socket))?;
    let timeout = Some(Duration::from_secs(30));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(ServerError::io("setting LMTP timeouts"))?;
    let mut writer = stream
        .try_clone()
        .map_err(ServerError::io("cloning LMTP stream"))?;
    let mut reader = BufReader::new(stream);
    expect(&mut reader, "220")?;
    for (cmd, code) in [
        ("LHLO localhost".to_string(), "250"),
        ("MAIL FROM:<>".to_string(), "250"),
        (format!("RCPT TO:<{recipient}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        send(&mut writer, cmd.as_bytes())?;
        expect(&mut reader, code)?;
    }
    writer
        .write_all(&dot_stuff(message))
        .map_err(ServerError::io("writing LMTP data"))?;
    expect(&mut reader, "250")?;
    send(&mut writer, b"QUIT")?;
    Ok(())
}

fn send(w: &mut UnixStream, line: &[u8]) -> Result<()> {
    w.write_all(line)
        .and_then(|()| w.write_all(b"\r\n"))
        .map_err(ServerError::io("writing LMTP command"))
}

/// Reads one (possibly multi-line) reply and checks its code.
fn expect(r: &mut BufReader<UnixStream>, code: &str) -> Result<()> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .map_err(ServerError::io("reading LMTP reply"))?;
        if n == 0 {
            return Err(ServerError::Lmtp {
                reply: format!("{all}(connection closed)"),
            });
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    if all.starts_with(code) {
        Ok(())
    } else {
        Err(ServerError::Lmtp { reply: all })
    }
}

/// CRLF lines with leading dots doubled, followed by the terminating `.` line.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let body = message.strip_suffix(b"\n").unwrap_or(message);
    if !message.is_empty() {
        for line in body.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::dot_stuff;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n".to_vec());
        assert_eq!(dot_stuff(b"a\n."), b"a\r\n..\r\n.\r\n".to_vec());
        assert_eq!(dot_stuff(b""), b".\r\n".to_vec());
    }
}
