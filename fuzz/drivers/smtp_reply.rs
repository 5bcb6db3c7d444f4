//! The SMTP reply collector on arbitrary MTA lines: a complete reply has one code on every
//! line and gives back exactly the bytes it consumed; nothing panics.
use komle_core::smtp::reply::ReplyCollector;

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    let mut c = ReplyCollector::default();
    let mut pending: Vec<u8> = Vec::new();
    for line in data.split_inclusive(|b| *b == b'\n') {
        match c.push_line(line) {
            Ok(Some(reply)) => {
                pending.extend_from_slice(line);
                assert!((200..600).contains(&reply.code));
                assert_eq!(reply.to_bytes(), pending);
                assert_eq!(reply.texts().count(), reply.lines.len());
                pending.clear();
            }
            Ok(None) => pending.extend_from_slice(line),
            Err(_) => {
                c = ReplyCollector::default();
                pending.clear();
            }
        }
    }
}
