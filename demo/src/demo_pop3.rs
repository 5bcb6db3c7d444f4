//! The receiving part of `komle-demo`: the KOM-LE message the demo sent lands in the POP3
//! mail service's maildrop, and a small POP3 client fetches it through komle-cm's POP3 proxy,
//! which decrypts and verifies it (§3.4.4). Optionally the maildrop also gets two large
//! messages for the POP3 load figures (`komle-load-pop3`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::demo::{DEMO_PASSWORD, DemoError};
use crate::embedded::Embedded;

type Conn = BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError(format!("{what}: {e}"))
}

/// Puts `message` (as the mail service received it) into the POP3 maildrop and fetches it as
/// message 1 through the POP3 proxy, printing the dialog and the opened message's head.
pub fn fetch_through_proxy(
    env: &Embedded,
    message: &[u8],
    out: &mut dyn Write,
) -> Result<(), DemoError> {
    let (Some(pop3), Some(proxy), Some(login)) = (&env.pop3, env.pop3_addr, env.pop3_login())
    else {
        return Err(DemoError("the demo runs without POP3".into()));
    };
    pop3.put(message.to_vec());
    let mut io = connect(proxy, env)?;
    let show = |out: &mut dyn Write, c: &str, r: &str| {
        if !c.is_empty() {
            let _ = writeln!(out, "   C: {c}");
        }
        let _ = writeln!(out, "   S: {}", r.trim_end());
    };
    let greeting = line(&mut io)?;
    show(out, "", &greeting);
    for (send, shown) in [
        (format!("USER {login}"), format!("USER {login}")),
        (
            format!("PASS {DEMO_PASSWORD}"),
            "PASS <password>".to_owned(),
        ),
    ] {
        let r = command(&mut io, &send)?;
        show(out, &shown, &r);
        if !r.starts_with("+OK") {
            return Err(DemoError(format!(
                "the POP3 proxy refused: {}",
                r.trim_end()
            )));
        }
    }
    let r = command(&mut io, "RETR 1")?;
    show(out, "RETR 1", &r);
    if !r.starts_with("+OK") {
        return Err(DemoError(format!("RETR failed: {}", r.trim_end())));
    }
    let body = multiline(&mut io)?;
    let _ = writeln!(
        out,
        "   ({} bytes; the opened mail's head, as the recipient's client sees it:)",
        body.len()
    );
    let text = String::from_utf8_lossy(&body);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    for l in head.lines().filter(|l| {
        ["Subject:", "From:", "To:", "X-KIM-"]
            .iter()
            .any(|p| l.starts_with(p))
    }) {
        let _ = writeln!(out, "   | {l}");
    }
    let r = command(&mut io, "QUIT")?;
    show(out, "QUIT", &r);
    Ok(())
}

/// Adds message 2 (a KOM-LE message of about `mb` MB, protected by the simulator) and message
/// 3 (a plain mail of the same size) to the maildrop, for the load tool.
pub fn add_large_messages(env: &Embedded, mb: usize) -> Result<(), DemoError> {
    let pop3 = env
        .pop3
        .as_ref()
        .ok_or_else(|| DemoError("the demo runs without POP3".into()))?;
    let from = &env.world.pki.sender.address;
    let to = &env.world.pki.single.address;
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n";
    let body = line.repeat(mb * 1024 * 1024 / line.len());
    let mail = |subject: &str| {
        format!(
            "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@komle.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        )
        .into_bytes()
    };
    env.put_kom_le(&mail("gross-komle"))
        .map_err(err("large KOM-LE message"))?;
    pop3.put(mail("gross-klartext"));
    Ok(())
}

fn connect(proxy: SocketAddr, env: &Embedded) -> Result<Conn, DemoError> {
    let sock = TcpStream::connect(proxy).map_err(err("connect to the POP3 proxy"))?;
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(err("socket"))?;
    let name = ServerName::try_from("localhost").map_err(err("server name"))?;
    let conn =
        rustls::ClientConnection::new(env.proxy_tls.client_config(), name).map_err(err("TLS"))?;
    Ok(BufReader::new(rustls::StreamOwned::new(conn, sock)))
}

fn line(io: &mut Conn) -> Result<String, DemoError> {
    let mut l = String::new();
    if io.read_line(&mut l).map_err(err("read"))? == 0 {
        return Err(DemoError("the POP3 proxy closed the connection".into()));
    }
    Ok(l)
}

fn command(io: &mut Conn, text: &str) -> Result<String, DemoError> {
    io.get_mut()
        .write_all(format!("{text}\r\n").as_bytes())
        .map_err(err("write"))?;
    line(io)
}

/// A dot-terminated block, unstuffed, CRLF line ends kept.
fn multiline(io: &mut Conn) -> Result<Vec<u8>, DemoError> {
    let mut out = Vec::new();
    loop {
        let mut l = Vec::new();
        if io.read_until(b'\n', &mut l).map_err(err("read"))? == 0 {
            return Err(DemoError("the POP3 proxy closed mid-message".into()));
        }
        if l == b".\r\n" {
            return Ok(out);
        }
        let l = l.strip_prefix(b".").unwrap_or(&l);
        out.extend_from_slice(l);
    }
}
