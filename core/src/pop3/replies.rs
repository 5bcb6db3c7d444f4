//! The server's replies in the PROXY state, in command order (KOM-LE-A_2040).
//!
//! POP3 has no reply tags: the only way to know where a reply ends — one line or a
//! dot-terminated block — is to remember which command it answers. Clients may pipeline
//! (RFC 2449 PIPELINING), so the forwarded commands queue up here and each reply is matched to
//! the oldest. Status lines and multi-line blocks are relayed byte for byte; only a `RETR`
//! message is held back and unstuffed for decryption.

use std::collections::VecDeque;

use super::command::ReplyShape;
use super::multiline::MultilineDecoder;
use super::reply::{self, Status};
use crate::secret::SecretBytes;

/// A forwarded command waiting for its reply.
#[derive(Clone, Copy, Debug)]
struct Awaited {
    shape: ReplyShape,
    /// QUIT: once answered, the session ends.
    quit: bool,
}

#[derive(Debug)]
enum Reading {
    /// Expecting a status line.
    Status,
    /// Relaying a multi-line block after `+OK`.
    Relay(MultilineDecoder),
    /// Collecting a RETR message; `too_big` once it passed the limit (the rest is discarded).
    Collect {
        decoder: MultilineDecoder,
        message: SecretBytes,
        too_big: bool,
    },
}

/// Why [`ReplyReader::feed`] stopped before the end of its input.
#[derive(Debug)]
pub enum Stop {
    /// A RETR message is complete (unstuffed, without terminator): open it before anything
    /// after it is relayed.
    Message(SecretBytes),
    /// The reply to QUIT was relayed.
    QuitAnswered,
    /// A status line exceeds the limit: the server is not speaking POP3.
    LineTooLong,
}

/// The text sent instead of a message larger than `max_message_size`.
pub const TOO_BIG: &str = "Die Nachricht ist zu gross fuer das Clientmodul";

/// Matches server bytes to the forwarded commands.
#[derive(Debug)]
pub struct ReplyReader {
    awaited: VecDeque<Awaited>,
    reading: Reading,
    max_line: usize,
    max_message: usize,
}

impl ReplyReader {
    pub fn new(max_line: usize, max_message: usize) -> Self {
        Self {
            awaited: VecDeque::new(),
            reading: Reading::Status,
            max_line,
            max_message,
        }
    }

    /// Registers a forwarded command.
    pub fn expect(&mut self, shape: ReplyShape, quit: bool) {
        self.awaited.push_back(Awaited { shape, quit });
    }

    /// Commands forwarded and not yet completely answered.
    pub fn outstanding(&self) -> usize {
        self.awaited.len()
    }

    /// Whether a RETR is forwarded and its message not yet complete.
    pub fn message_outstanding(&self) -> bool {
        self.awaited.iter().any(|a| a.shape == ReplyShape::Message)
    }

    /// Reads server bytes, appending what the client must get to `client`. Returns how much of
    /// `input` was used; bytes not used (an incomplete status line, or everything after a
    /// [`Stop`]) must be offered again.
    pub fn feed(&mut self, input: &[u8], client: &mut Vec<u8>) -> (usize, Option<Stop>) {
        let mut i = 0;
        while i < input.len() {
            match &mut self.reading {
                Reading::Status => {
                    let rest = &input[i..];
                    let Some(lf) = rest.iter().position(|b| *b == b'\n') else {
                        if rest.len() > self.max_line {
                            return (i, Some(Stop::LineTooLong));
                        }
                        return (i, None);
                    };
                    let line = &rest[..=lf];
                    if line.len() > self.max_line {
                        return (i, Some(Stop::LineTooLong));
                    }
                    i += lf + 1;
                    let Some(head) = self.awaited.front().copied() else {
                        // Unsolicited (e.g. a server's goodbye before it hangs up): relayed
                        // unchanged like every other reply.
                        client.extend_from_slice(line);
                        continue;
                    };
                    match (head.shape, reply::status(line)) {
                        (ReplyShape::MultiLine, Status::Ok) => {
                            client.extend_from_slice(line);
                            self.reading = Reading::Relay(MultilineDecoder::new());
                        }
                        (ReplyShape::Message, Status::Ok) => {
                            // The server's `+OK <size> octets` counts the encrypted message;
                            // the client gets a fresh one with the true size after opening.
                            self.reading = Reading::Collect {
                                decoder: MultilineDecoder::new(),
                                message: SecretBytes::new(),
                                too_big: false,
                            };
                        }
                        _ => {
                            client.extend_from_slice(line);
                            self.awaited.pop_front();
                            if head.quit {
                                return (i, Some(Stop::QuitAnswered));
                            }
                        }
                    }
                }
                Reading::Relay(decoder) => {
                    let fed = decoder.feed(&input[i..], |_| {});
                    client.extend_from_slice(&input[i..i + fed.consumed]);
                    i += fed.consumed;
                    if fed.done {
                        self.awaited.pop_front();
                        self.reading = Reading::Status;
                    }
                }
                Reading::Collect {
                    decoder,
                    message,
                    too_big,
                } => {
                    let max = self.max_message;
                    let fed = decoder.feed(&input[i..], |s| {
                        if *too_big {
                            return;
                        }
                        if message.len() + s.len() > max {
                            *too_big = true;
                            *message = SecretBytes::new();
                        } else {
                            message.extend_from_slice(s);
                        }
                    });
                    i += fed.consumed;
                    if fed.done {
                        self.awaited.pop_front();
                        let done = core::mem::replace(&mut self.reading, Reading::Status);
                        if let Reading::Collect {
                            message, too_big, ..
                        } = done
                        {
                            if too_big {
                                client.extend_from_slice(&reply::err(TOO_BIG));
                            } else {
                                return (i, Some(Stop::Message(message)));
                            }
                        }
                    }
                }
            }
        }
        (i, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> ReplyReader {
        ReplyReader::new(512, 100)
    }

    #[test]
    fn a_2040_pipelined_replies_are_relayed_in_order() {
        let mut r = reader();
        r.expect(ReplyShape::SingleLine, false);
        r.expect(ReplyShape::MultiLine, false);
        r.expect(ReplyShape::MultiLine, false);
        r.expect(ReplyShape::SingleLine, false);
        let wire: &[u8] = b"+OK 2 320\r\n+OK\r\n1 120\r\n2 200\r\n.\r\n-ERR no\r\n+OK bye\r\n";
        let mut client = Vec::new();
        let (used, stop) = r.feed(wire, &mut client);
        assert!(stop.is_none());
        assert_eq!(used, wire.len());
        assert_eq!(client, wire);
        assert_eq!(r.outstanding(), 0);
    }

    #[test]
    fn a_2040_incomplete_status_line_waits() {
        let mut r = reader();
        r.expect(ReplyShape::SingleLine, false);
        let mut client = Vec::new();
        assert_eq!(r.feed(b"+OK 1 2", &mut client).0, 0);
        assert!(client.is_empty());
        assert_eq!(r.outstanding(), 1);
    }

    #[test]
    fn retr_message_is_unstuffed_and_stops_the_reader() {
        let mut r = reader();
        r.expect(ReplyShape::Message, false);
        r.expect(ReplyShape::SingleLine, false);
        let wire: &[u8] = b"+OK 9 octets\r\n..x\r\ny\r\n.\r\n+OK next\r\n";
        let mut client = Vec::new();
        let (used, stop) = r.feed(wire, &mut client);
        assert!(client.is_empty());
        assert_eq!(&wire[used..], b"+OK next\r\n");
        match stop {
            Some(Stop::Message(m)) => assert_eq!(m.as_slice(), b".x\r\ny\r\n"),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.outstanding(), 1);
    }

    #[test]
    fn retr_error_is_a_single_line() {
        let mut r = reader();
        r.expect(ReplyShape::Message, false);
        let mut client = Vec::new();
        let (used, stop) = r.feed(b"-ERR no such message\r\n", &mut client);
        assert_eq!(used, 22);
        assert!(stop.is_none());
        assert_eq!(client, b"-ERR no such message\r\n");
    }

    #[test]
    fn retr_over_the_limit_is_discarded_with_err() {
        let mut r = reader();
        r.expect(ReplyShape::Message, false);
        let mut wire = b"+OK\r\n".to_vec();
        for _ in 0..20 {
            wire.extend_from_slice(b"0123456789\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        let mut client = Vec::new();
        let (used, stop) = r.feed(&wire, &mut client);
        assert!(stop.is_none());
        assert_eq!(used, wire.len());
        assert_eq!(client, reply::err(TOO_BIG));
    }

    #[test]
    fn overlong_status_line_is_reported() {
        let mut r = reader();
        r.expect(ReplyShape::SingleLine, false);
        let mut client = Vec::new();
        let (_, stop) = r.feed(&[b'a'; 600], &mut client);
        assert!(matches!(stop, Some(Stop::LineTooLong)));
    }
}
