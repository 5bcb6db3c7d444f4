//! Minimal HTTP/1.1 request reading and response writing for the simulator's server.
//!
//! WHY hand-written: the simulator needs exactly Content-Length bodies, keep-alive and a few
//! headers; a full HTTP stack would add dependencies the workspace does not otherwise need.

use std::io::{self, Read, Write};

/// Largest accepted header block.
pub const MAX_HEADER: usize = 64 * 1024;
/// Largest accepted body (SOAP requests carry whole mails, base64).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asked to close after this exchange.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection cleanly between requests.
    Closed,
    Io(io::Error),
    /// Answer with this status and close.
    Bad(u16, &'static str),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads one request. `buf` carries bytes already read past the previous request (pipelining).
/// Answers `Expect: 100-continue` (curl sends it for large POSTs) before reading the body.
pub fn read_request<S: Read + Write>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Request, ReadError> {
    let header_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEADER {
            return Err(ReadError::Bad(431, "header too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return if buf.is_empty() {
                Err(ReadError::Closed)
            } else {
                Err(ReadError::Bad(400, "truncated header"))
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end])
        .map_err(|_| ReadError::Bad(400, "header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(400, "bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Bad(505, "HTTP version not supported"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            return Err(ReadError::Bad(400, "bad header line"));
        };
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body: Vec::new(),
    };
    if req.header("transfer-encoding").is_some() {
        return Err(ReadError::Bad(
            501,
            "only Content-Length bodies are supported",
        ));
    }
    let len = match req.header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Bad(400, "bad Content-Length"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(ReadError::Bad(413, "body too large"));
    }
    buf.drain(..header_end + 4);
    if buf.len() < len
        && req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        stream.flush()?;
    }
    while buf.len() < len {
        let mut chunk = vec![0u8; (len - buf.len()).min(64 * 1024)];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ReadError::Bad(400, "truncated body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    req.body = buf.drain(..len).collect();
    Ok(req)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// Writes a response with a Content-Length body.
pub fn write_response<S: Write>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (n, v) in extra_headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads from a byte slice, records what is written.
    struct Duplex<'a> {
        input: &'a [u8],
        written: Vec<u8>,
    }

    impl Read for Duplex<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Duplex<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn duplex(input: &[u8]) -> Duplex<'_> {
        Duplex {
            input,
            written: Vec::new(),
        }
    }

    #[test]
    fn expect_100_continue_is_answered_before_the_body() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
        let mut d = duplex(raw);
        let mut buf = Vec::new();
        // The body never comes: the request fails, but only after 100 Continue was sent.
        assert!(read_request(&mut d, &mut buf).is_err());
        assert_eq!(d.written, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn pipelined_requests_are_split_by_content_length() {
        let raw = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nSOAPAction: x#y\r\n\r\nabcGET /connector.sds HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut src = duplex(raw);
        let mut buf = Vec::new();
        let r1 = read_request(&mut src, &mut buf).unwrap();
        assert_eq!(
            (r1.method.as_str(), r1.body.as_slice()),
            ("POST", &b"abc"[..])
        );
        assert_eq!(r1.header("soapaction"), Some("x#y"));
        let r2 = read_request(&mut src, &mut buf).unwrap();
        assert_eq!(r2.path, "/connector.sds");
        assert!(matches!(
            read_request(&mut src, &mut buf),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn oversized_or_chunked_bodies_are_refused() {
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut duplex(big.as_bytes()), &mut buf),
            Err(ReadError::Bad(413, _))
        ));
        let mut buf = Vec::new();
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            read_request(&mut duplex(chunked), &mut buf),
            Err(ReadError::Bad(501, _))
        ));
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut duplex(b"garbage\r\n\r\n"), &mut buf),
            Err(ReadError::Bad(400, _))
        ));
    }
}
