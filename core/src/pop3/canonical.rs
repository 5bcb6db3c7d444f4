//! The commands the PROXY state relays, in the one form the module writes them (default deny).
//!
//! KOM-LE-A_2040 asks the Clientmodul to pass the client's commands on "ohne jegliche
//! Veränderungen". Relaying a line byte for byte, however, also relays everything a lenient
//! parser did not look at: a leading space, a TAB, a bare CR, a NUL, a second command hidden
//! behind a control character. Servers differ in how they read such lines (on the SMTP side
//! ` DATA` with a leading space went through and Postfix accepted it), and whatever a server
//! makes of a line the module did not understand is outside the module's control — it could,
//! for instance, fetch a message around the decryption step.
//!
//! So the PROXY state forwards only a [`CanonicalCommand`]: a line is parsed strictly
//! ([`CanonicalCommand::parse`]) and the module writes its own serialisation
//! ([`CanonicalCommand::to_line`], the type's only way to bytes). Everything else gets a local
//! `-ERR` and never reaches the server ([`Refusal`]).
//!
//! Where this deviates from "unchanged" (A_2040), and why:
//! - the keyword is written in upper case and arguments are separated by one space (RFC 1939 §3
//!   allows any case; runs of spaces and trailing spaces are accepted from the client);
//! - message numbers are written without leading zeros (`RETR 007` → `RETR 7`);
//! - `TOP n N` is written as `TOP n 0` (A_2041);
//! - lines with control characters, non-ASCII bytes, leading whitespace, unknown keywords or
//!   arguments that are not what RFC 1939 defines are answered with `-ERR` locally;
//! - `APOP`, `STLS`, `AUTH`, `USER`, `PASS` (the login is over: the module logged in for the
//!   client, §3.4.2.2), `UTF8`, `LANG` and every other extension are answered with `-ERR`
//!   locally. The server's `CAPA` answer is still relayed unchanged; a client that tries an
//!   advertised extension gets `-ERR`, which RFC 2449 clients handle.
//!
//! A line the client sent in canonical form (`RETR 1`, `LIST`, `TOP 3 0`, `DELE 2`) reaches the
//! server byte for byte as before.

use core::fmt;

use super::command::ReplyShape;

/// Largest message number relayed. RFC 1939 message numbers count the messages in the
/// maildrop from 1; ten million messages are far beyond any KOM-LE mailbox, so a larger number
/// (or one with more than [`MAX_DIGITS`] digits) can only be a malformed line.
pub const MAX_MESSAGE_NUMBER: u32 = 9_999_999;

/// Most digits accepted for a number (leading zeros included), so parsing stays trivial.
pub const MAX_DIGITS: usize = 10;

/// A message number of the maildrop, `1..=MAX_MESSAGE_NUMBER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageNumber(u32);

impl MessageNumber {
    /// `None` for 0 or a number above [`MAX_MESSAGE_NUMBER`].
    pub fn new(n: u32) -> Option<Self> {
        (1..=MAX_MESSAGE_NUMBER).contains(&n).then_some(Self(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MessageNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A command the PROXY state relays (RFC 1939 TRANSACTION state, RFC 2449 CAPA), parsed and
/// validated. There is no way to build one from raw bytes other than [`CanonicalCommand::parse`],
/// and no way to bytes other than [`CanonicalCommand::to_line`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanonicalCommand {
    Stat,
    /// `LIST [msg]`: multi-line without argument.
    List(Option<MessageNumber>),
    /// `UIDL [msg]`: multi-line without argument.
    Uidl(Option<MessageNumber>),
    Retr(MessageNumber),
    Dele(MessageNumber),
    /// `TOP msg n`; the module forwards it only with `lines == 0` (A_2041, see
    /// [`CanonicalCommand::with_zero_top_lines`]).
    Top {
        message: MessageNumber,
        lines: u32,
    },
    Noop,
    Rset,
    /// Ends the session; the server enters UPDATE and commits the DELEs (RFC 1939 §6).
    Quit,
    Capa,
}

/// Why a line from the client is not relayed; the client gets `-ERR` with [`Refusal::text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a well-formed command line: control characters, non-ASCII bytes, leading
    /// whitespace, an empty line or arguments RFC 1939 does not define for the keyword.
    Malformed,
    /// A well-formed keyword the module does not relay (login commands after the login,
    /// extensions, unknown commands).
    NotRelayed,
}

/// `-ERR` text for [`Refusal::Malformed`].
pub const MALFORMED: &str = "Ungueltige Kommandozeile";
/// `-ERR` text for [`Refusal::NotRelayed`].
pub const NOT_RELAYED: &str = "Kommando wird vom Clientmodul nicht unterstuetzt";

impl Refusal {
    pub fn text(self) -> &'static str {
        match self {
            Refusal::Malformed => MALFORMED,
            Refusal::NotRelayed => NOT_RELAYED,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for Refusal {}

impl CanonicalCommand {
    /// Parses one command line given without its line end (CRLF, or a bare LF, removed
    /// once). Only printable ASCII and SP are accepted; the
    /// line must start with the keyword; arguments are separated by SP (runs of SP are
    /// tolerated, nothing else is).
    pub fn parse(line: &[u8]) -> Result<Self, Refusal> {
        if line.is_empty() || line[0] == b' ' || !line.iter().all(|b| (b' '..=b'~').contains(b)) {
            return Err(Refusal::Malformed);
        }
        // Only printable ASCII is left, so this cannot fail.
        let text = core::str::from_utf8(line).map_err(|_| Refusal::Malformed)?;
        let mut words = text.split(' ').filter(|w| !w.is_empty());
        let keyword = words.next().ok_or(Refusal::Malformed)?;
        if !(3..=4).contains(&keyword.len()) || !keyword.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Refusal::NotRelayed);
        }
        let args: Vec<&str> = words.collect();
        let upper = keyword.to_ascii_uppercase();
        let command = match (upper.as_str(), args.as_slice()) {
            ("STAT", []) => Self::Stat,
            ("NOOP", []) => Self::Noop,
            ("RSET", []) => Self::Rset,
            ("QUIT", []) => Self::Quit,
            ("CAPA", []) => Self::Capa,
            ("LIST", []) => Self::List(None),
            ("LIST", [n]) => Self::List(Some(message_number(n)?)),
            ("UIDL", []) => Self::Uidl(None),
            ("UIDL", [n]) => Self::Uidl(Some(message_number(n)?)),
            ("RETR", [n]) => Self::Retr(message_number(n)?),
            ("DELE", [n]) => Self::Dele(message_number(n)?),
            ("TOP", [n, lines]) => Self::Top {
                message: message_number(n)?,
                lines: digits(lines)?,
            },
            (
                "STAT" | "NOOP" | "RSET" | "QUIT" | "CAPA" | "LIST" | "UIDL" | "RETR" | "DELE"
                | "TOP",
                _,
            ) => return Err(Refusal::Malformed),
            _ => return Err(Refusal::NotRelayed),
        };
        Ok(command)
    }

    /// The line the module writes to the server, CRLF included: keyword in upper case, one
    /// space before each argument, numbers in decimal without leading zeros.
    pub fn to_line(&self) -> Vec<u8> {
        let text = match self {
            Self::Stat => "STAT".to_owned(),
            Self::Noop => "NOOP".to_owned(),
            Self::Rset => "RSET".to_owned(),
            Self::Quit => "QUIT".to_owned(),
            Self::Capa => "CAPA".to_owned(),
            Self::List(None) => "LIST".to_owned(),
            Self::List(Some(n)) => format!("LIST {n}"),
            Self::Uidl(None) => "UIDL".to_owned(),
            Self::Uidl(Some(n)) => format!("UIDL {n}"),
            Self::Retr(n) => format!("RETR {n}"),
            Self::Dele(n) => format!("DELE {n}"),
            Self::Top { message, lines } => format!("TOP {message} {lines}"),
        };
        let mut line = text.into_bytes();
        line.extend_from_slice(b"\r\n");
        line
    }

    /// `TOP n N` becomes `TOP n 0` (KOM-LE-A_2041): a KOM-LE body is one encrypted CMS block,
    /// whose lines are useless to the client and must not leave the module as fragments.
    pub fn with_zero_top_lines(self) -> Self {
        match self {
            Self::Top { message, .. } => Self::Top { message, lines: 0 },
            other => other,
        }
    }

    /// The shape of the server's reply (RFC 1939 §5–7, RFC 2449 §5).
    pub fn reply_shape(&self) -> ReplyShape {
        match self {
            Self::Capa | Self::Top { .. } | Self::List(None) | Self::Uidl(None) => {
                ReplyShape::MultiLine
            }
            Self::Retr(_) => ReplyShape::Message,
            _ => ReplyShape::SingleLine,
        }
    }
}

/// Decimal digits only, at most [`MAX_DIGITS`], value fits `u32`.
fn digits(s: &str) -> Result<u32, Refusal> {
    if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed);
    }
    s.parse().map_err(|_| Refusal::Malformed)
}

fn message_number(s: &str) -> Result<MessageNumber, Refusal> {
    MessageNumber::new(digits(s)?).ok_or(Refusal::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(line: &[u8]) -> Result<String, Refusal> {
        CanonicalCommand::parse(line).map(|c| String::from_utf8(c.to_line()).unwrap())
    }

    #[test]
    fn a_2040_canonical_lines_round_trip_unchanged() {
        for line in [
            "STAT",
            "LIST",
            "LIST 1",
            "UIDL",
            "UIDL 12",
            "RETR 1",
            "DELE 9999999",
            "TOP 3 0",
            "TOP 3 25",
            "NOOP",
            "RSET",
            "QUIT",
            "CAPA",
        ] {
            assert_eq!(canon(line.as_bytes()), Ok(format!("{line}\r\n")), "{line}");
        }
    }

    #[test]
    fn a_2040_keywords_any_case_are_written_upper_case() {
        assert_eq!(canon(b"stat"), Ok("STAT\r\n".into()));
        assert_eq!(canon(b"ReTr 2"), Ok("RETR 2\r\n".into()));
        assert_eq!(canon(b"top 1 5"), Ok("TOP 1 5\r\n".into()));
    }

    #[test]
    fn a_2040_spaces_and_leading_zeros_are_normalised() {
        assert_eq!(canon(b"LIST  1"), Ok("LIST 1\r\n".into()));
        assert_eq!(canon(b"LIST "), Ok("LIST\r\n".into()));
        assert_eq!(canon(b"RETR 007"), Ok("RETR 7\r\n".into()));
    }

    #[test]
    fn a_2040_control_characters_and_leading_whitespace_are_refused() {
        for line in [
            &b" STAT"[..],
            b"\tSTAT",
            b"STAT\t",
            b"LIST\t1",
            b"LIST\x0b1",
            b"LIST\x0c1",
            b"STAT\r",
            b"ST\rAT",
            b"RETR 1\0",
            b"\x1b[2JSTAT",
            b"STAT\x7f",
            b"",
            b"   ",
        ] {
            assert_eq!(
                CanonicalCommand::parse(line),
                Err(Refusal::Malformed),
                "{line:?}"
            );
        }
    }

    #[test]
    fn a_2040_non_ascii_is_refused() {
        assert_eq!(
            CanonicalCommand::parse("STÄT".as_bytes()),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            CanonicalCommand::parse("RETR ١".as_bytes()),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            CanonicalCommand::parse(b"RETR \xff"),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn a_2040_arguments_are_validated() {
        for line in [
            "RETR",
            "RETR 0",
            "RETR x",
            "RETR -1",
            "RETR +1",
            "RETR 1 2",
            "DELE",
            "LIST 1 2",
            "LIST 10000000",
            "RETR 99999999999",
            "TOP 1",
            "TOP 1 x",
            "TOP 0 0",
            "TOP 1 0 0",
            "TOP 1 4294967296",
            "STAT 1",
            "QUIT now",
            "NOOP x",
        ] {
            assert_eq!(
                CanonicalCommand::parse(line.as_bytes()),
                Err(Refusal::Malformed),
                "{line}"
            );
        }
    }

    #[test]
    fn a_2040_login_commands_and_extensions_are_not_relayed() {
        for line in [
            "APOP erik 0123456789abcdef",
            "STLS",
            "AUTH PLAIN",
            "USER erik",
            "PASS geheim",
            "UTF8",
            "LANG de",
            "XTND XMIT",
            "LAST",
            "X",
            "RETRIEVE 1",
        ] {
            assert_eq!(
                CanonicalCommand::parse(line.as_bytes()),
                Err(Refusal::NotRelayed),
                "{line}"
            );
        }
    }

    #[test]
    fn a_2041_top_lines_become_zero() {
        let top = CanonicalCommand::parse(b"TOP 4 100").unwrap();
        assert_eq!(top.with_zero_top_lines().to_line(), b"TOP 4 0\r\n");
        let retr = CanonicalCommand::parse(b"RETR 4").unwrap();
        assert_eq!(retr.with_zero_top_lines(), retr);
    }

    #[test]
    fn a_2040_reply_shapes() {
        use ReplyShape::*;
        for (line, shape) in [
            (&b"CAPA"[..], MultiLine),
            (b"LIST", MultiLine),
            (b"LIST 1", SingleLine),
            (b"UIDL", MultiLine),
            (b"UIDL 2", SingleLine),
            (b"TOP 1 0", MultiLine),
            (b"RETR 1", Message),
            (b"STAT", SingleLine),
            (b"DELE 1", SingleLine),
            (b"QUIT", SingleLine),
        ] {
            assert_eq!(
                CanonicalCommand::parse(line).map(|c| c.reply_shape()),
                Ok(shape)
            );
        }
    }
}
