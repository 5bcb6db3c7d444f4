//! `multipart/form-data` bodies of `add_Attachment` (RFC 7578), parsed from memory.
//!
//! WHY hand-written: the simulator needs four named fields and per-part headers; the
//! multipart crates are async or pull in an HTTP stack.

use memchr::memmem;

/// One form part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart {
    pub name: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub data: std::ops::Range<usize>,
}

impl FormPart {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The body is not well-formed multipart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadMultipart;

/// The `boundary` parameter of a `multipart/form-data` Content-Type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// Splits `body` into its parts (data as ranges into `body`, so a 500 MB attachment is not
/// copied).
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<FormPart>, BadMultipart> {
    let delimiter = format!("\r\n--{boundary}");
    let finder = memmem::Finder::new(delimiter.as_bytes());
    // The first delimiter may sit at the very start (no preceding CRLF).
    let first = format!("--{boundary}");
    let mut pos = if body.starts_with(first.as_bytes()) {
        first.len()
    } else {
        finder.find(body).ok_or(BadMultipart)? + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = body.get(pos..).ok_or(BadMultipart)?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        if !rest.starts_with(b"\r\n") {
            return Err(BadMultipart);
        }
        pos += 2;
        let head_end = memmem::find(&body[pos..], b"\r\n\r\n").ok_or(BadMultipart)? + pos;
        let head = std::str::from_utf8(&body[pos..head_end]).map_err(|_| BadMultipart)?;
        let mut headers = Vec::new();
        for line in head.split("\r\n") {
            let (n, v) = line.split_once(':').ok_or(BadMultipart)?;
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let data_start = head_end + 4;
        let data_end = finder.find(&body[data_start..]).ok_or(BadMultipart)? + data_start;
        let disposition = headers
            .iter()
            .find(|(n, _)| n == "content-disposition")
            .map(|(_, v)| v.clone())
            .ok_or(BadMultipart)?;
        let name = disposition
            .split(';')
            .skip(1)
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == "name").then(|| v.trim().trim_matches('"').to_owned())
            })
            .ok_or(BadMultipart)?;
        parts.push(FormPart {
            name,
            headers,
            data: data_start..data_end,
        });
        pos = data_end + delimiter.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_and_binary_part_are_split() {
        let body = b"--XY\r\nContent-Disposition: form-data; name=\"messageID\"\r\n\r\n<m@x>\r\n--XY\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"attachment.enc\"\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\n\r\n--X\r\n--XY--\r\n";
        let parts = parse(body, "XY").expect("parses");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "messageID");
        assert_eq!(&body[parts[0].data.clone()], b"<m@x>");
        assert_eq!(&body[parts[1].data.clone()], b"\r\n--X");
        assert_eq!(parts[1].header("content-length"), Some("4"));
        assert_eq!(parse(b"garbage", "XY"), Err(BadMultipart));
        assert_eq!(
            parse(b"--XY\r\nno colon\r\n\r\nx\r\n--XY--", "XY"),
            Err(BadMultipart)
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\""),
            Some("abc".into())
        );
        assert_eq!(boundary("text/plain; boundary=abc"), None);
    }
}
