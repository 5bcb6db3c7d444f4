//! The server's replies in the PROXY state, in command order (KOM-LE-A_2040).
//!
//! POP3 has no reply tags: the only way to know where a reply ends — one line or a
//! dot-terminated block — is to remember which command it answers. Clients may pipeline
//! (RFC 2449 PIPELINING), so the forwarded commands queue up here and each reply is matched to
//! the oldest. Lines the module answers itself (a refused command, see
//! [`canonical`](super::canonical)) queue up in the same order, so a pipelining client gets
//! every answer in the order of its commands.
//!
//! Status lines and multi-line blocks are relayed byte for byte. A multi-line block (LIST,
//! UIDL, CAPA, TOP) is held until its terminating `.` line arrived and then relayed whole: if
//! the server goes away in the middle, the client gets one `-ERR` line instead of half a
//! listing it cannot tell from a complete one (A_2038). A `RETR` message is held back and
//! unstuffed for decryption.

use std::collections::VecDeque;

use super::command::ReplyShape;
use super::multiline::MultilineDecoder;
use super::reply::{self, Status};
use crate::secret::SecretBytes;

/// An answer the client is owed, in command order.
#[derive(Debug)]
enum Awaited {
    /// A forwarded command waiting for the server's reply; `quit`: once answered, the session
    /// ends; `top`: a `TOP` header, adjusted for Thunderbird ([`top_header`](super::top_header)).
    Server {
        shape: ReplyShape,
        quit: bool,
        top: bool,
    },
    /// The module's own answer to a refused command, sent when every reply before it is.
    Local(Vec<u8>),
}

#[derive(Debug)]
enum Reading {
    /// Expecting a status line.
    Status,
    /// Holding a multi-line block after `+OK` (the status line included) until it is
    /// complete; `too_big` once it passed the limit (the rest is discarded).
    Relay {
        decoder: MultilineDecoder,
        block: SecretBytes,
        too_big: bool,
        top: bool,
    },
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

/// The text sent instead of a message (or multi-line block) larger than `max_message_size`.
pub const TOO_BIG: &str = "Die Nachricht ist zu gross fuer das Clientmodul";

/// Matches server bytes to the forwarded commands.
#[derive(Debug)]
pub struct ReplyReader {
    /// Invariant: the front is never [`Awaited::Local`] after a public call returns — local
    /// answers go out as soon as everything before them has.
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
        self.awaited.push_back(Awaited::Server {
            shape,
            quit,
            top: false,
        });
    }

    /// Registers a forwarded `TOP`: its header block is relayed without `MIME-Version` when it
    /// is a KOM-LE message's (the Thunderbird hint after KOM-LE-A_2041).
    pub fn expect_top(&mut self) {
        self.awaited.push_back(Awaited::Server {
            shape: ReplyShape::MultiLine,
            quit: false,
            top: true,
        });
    }

    /// Queues the module's own answer behind the replies still owed, or appends it to
    /// `client` at once when none is.
    pub fn answer_locally(&mut self, line: Vec<u8>, client: &mut Vec<u8>) {
        if self.awaited.is_empty() {
            client.extend_from_slice(&line);
        } else {
            self.awaited.push_back(Awaited::Local(line));
        }
    }

    /// Answers not yet given to the client (the server owes the first whenever this is > 0).
    pub fn outstanding(&self) -> usize {
        self.awaited.len()
    }

    /// Whether a RETR is forwarded and its message not yet complete.
    pub fn message_outstanding(&self) -> bool {
        self.awaited.iter().any(|a| {
            matches!(
                a,
                Awaited::Server {
                    shape: ReplyShape::Message,
                    ..
                }
            )
        })
    }

    /// Removes the answered head and sends the local answers now due.
    fn answered(&mut self, client: &mut Vec<u8>) {
        self.awaited.pop_front();
        self.flush_local(client);
    }

    fn flush_local(&mut self, client: &mut Vec<u8>) {
        while let Some(Awaited::Local(_)) = self.awaited.front() {
            if let Some(Awaited::Local(line)) = self.awaited.pop_front() {
                client.extend_from_slice(&line);
            }
        }
    }

    /// Reads server bytes, appending what the client must get to `client`. Returns how much of
    /// `input` was used; bytes not used (an incomplete status line, or everything after a
    /// [`Stop`]) must be offered again.
    pub fn feed(&mut self, input: &[u8], client: &mut Vec<u8>) -> (usize, Option<Stop>) {
        if matches!(self.reading, Reading::Status) {
            self.flush_local(client);
        }
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
                    let Some(Awaited::Server { shape, quit, top }) = self.awaited.front() else {
                        // Unsolicited (e.g. a server's goodbye before it hangs up): relayed
                        // unchanged like every other reply.
                        client.extend_from_slice(line);
                        continue;
                    };
                    let (shape, quit, top) = (*shape, *quit, *top);
                    match (shape, reply::status(line)) {
                        (ReplyShape::MultiLine, Status::Ok) => {
                            self.reading = Reading::Relay {
                                decoder: MultilineDecoder::new(),
                                block: SecretBytes::from(line),
                                too_big: false,
                                top,
                            };
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
                            if quit {
                                self.awaited.pop_front();
                                return (i, Some(Stop::QuitAnswered));
                            }
                            self.answered(client);
                        }
                    }
                }
                Reading::Relay {
                    decoder,
                    block,
                    too_big,
                    ..
                } => {
                    let fed = decoder.feed(&input[i..], |_| {});
                    let raw = &input[i..i + fed.consumed];
                    if !*too_big {
                        if block.len() + raw.len() > self.max_message {
                            *too_big = true;
                            *block = SecretBytes::new();
                        } else {
                            block.extend_from_slice(raw);
                        }
                    }
                    i += fed.consumed;
                    if fed.done {
                        let done = core::mem::replace(&mut self.reading, Reading::Status);
                        if let Reading::Relay {
                            block,
                            too_big,
                            top,
                            ..
                        } = done
                        {
                            if too_big {
                                client.extend_from_slice(&reply::err(TOO_BIG));
                            } else if let Some(adjusted) = top
                                .then(|| super::top_header::without_mime_version(block.as_slice()))
                                .flatten()
                                .map(SecretBytes::from)
                            {
                                // Wiped when dropped, like the block: it holds addresses.
                                client.extend_from_slice(adjusted.as_slice());
                            } else {
                                client.extend_from_slice(block.as_slice());
                            }
                        }
                        self.answered(client);
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
                        let done = core::mem::replace(&mut self.reading, Reading::Status);
                        if let Reading::Collect {
                            message, too_big, ..
                        } = done
                        {
                            if too_big {
                                client.extend_from_slice(&reply::err(TOO_BIG));
                                self.answered(client);
                            } else {
                                // Local answers behind the RETR wait for the opened message.
                                self.awaited.pop_front();
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
    fn a_2040_local_answers_keep_command_order() {
        let mut r = reader();
        let mut client = Vec::new();
        r.answer_locally(b"-ERR a\r\n".to_vec(), &mut client);
        assert_eq!(client, b"-ERR a\r\n", "nothing owed: at once");
        client.clear();
        r.expect(ReplyShape::SingleLine, false);
        r.answer_locally(b"-ERR b\r\n".to_vec(), &mut client);
        r.expect(ReplyShape::MultiLine, false);
        r.answer_locally(b"-ERR c\r\n".to_vec(), &mut client);
        assert!(client.is_empty());
        assert_eq!(r.outstanding(), 4);
        r.feed(b"+OK 1\r\n+OK\r\nx\r\n", &mut client);
        assert_eq!(client, b"+OK 1\r\n-ERR b\r\n");
        r.feed(b".\r\n", &mut client);
        assert_eq!(client, b"+OK 1\r\n-ERR b\r\n+OK\r\nx\r\n.\r\n-ERR c\r\n");
        assert_eq!(r.outstanding(), 0);
    }

    #[test]
    fn a_2038_multi_line_block_is_held_until_complete() {
        let mut r = reader();
        r.expect(ReplyShape::MultiLine, false);
        let mut client = Vec::new();
        let (used, stop) = r.feed(b"+OK\r\n1 10\r\n2 2", &mut client);
        assert_eq!((used, stop.is_none()), (14, true));
        assert!(client.is_empty(), "half a listing is never relayed");
        assert_eq!(r.outstanding(), 1);
        r.feed(b"0\r\n.\r\n", &mut client);
        assert_eq!(client, b"+OK\r\n1 10\r\n2 20\r\n.\r\n");
    }

    #[test]
    fn multi_line_block_over_the_limit_is_replaced_by_err() {
        let mut r = reader();
        r.expect(ReplyShape::MultiLine, false);
        r.expect(ReplyShape::SingleLine, false);
        let mut wire = b"+OK\r\n".to_vec();
        for _ in 0..20 {
            wire.extend_from_slice(b"1 0123456789\r\n");
        }
        wire.extend_from_slice(b".\r\n+OK\r\n");
        let mut client = Vec::new();
        r.feed(&wire, &mut client);
        let mut expected = reply::err(TOO_BIG);
        expected.extend_from_slice(b"+OK\r\n");
        assert_eq!(client, expected);
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
