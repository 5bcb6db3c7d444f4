//! POP3 command lines from the client (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH).
//!
//! This parser serves the CONNECT state, which answers every line itself (Tab_POP3_Ant_Init,
//! KOM-LE-A_2030) and relays nothing; it may stay lenient about arguments. The PROXY state uses
//! the strict [`CanonicalCommand`](super::CanonicalCommand) instead: only what it parsed and
//! wrote itself reaches the server.

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take_while1;
use nom::character::complete::char;
use nom::combinator::{all_consuming, opt, rest};
use nom::sequence::preceded;

use super::canonical::CanonicalCommand;

/// One parsed command line; arguments borrow from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Capa,
    /// `USER name`: the KOM-LE login name (A_2032).
    User(&'a str),
    /// `PASS secret`: RFC 1939 lets the password contain spaces, so it is the whole rest.
    Pass(&'a str),
    /// `AUTH mechanism [initial-response]` (RFC 5034).
    Auth {
        mechanism: &'a str,
        initial_response: Option<&'a str>,
    },
    Quit,
    Stat,
    /// `LIST [msg]`: multi-line without argument.
    List(Option<&'a str>),
    /// `UIDL [msg]`: multi-line without argument.
    Uidl(Option<&'a str>),
    Retr(&'a str),
    /// `TOP msg n`, arguments as sent.
    Top {
        message: &'a str,
        lines: &'a str,
    },
    /// Any other verb (DELE, NOOP, RSET, APOP, STLS, extensions), upper-cased by the caller
    /// when compared.
    Other(&'a str),
}

/// Why a line is not a command at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// Not UTF-8 (RFC 1939 commands are ASCII; passwords may be UTF-8).
    NotText,
    /// No keyword, or a keyword not followed by a single space.
    Malformed,
}

/// What the server sends back for a command, which the proxy must know to find the end of the
/// reply in the byte stream and to keep pipelined replies in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyShape {
    /// One status line.
    SingleLine,
    /// `+OK` plus a dot-terminated block; `-ERR` stays one line (RFC 2449 §6.1).
    MultiLine,
    /// Like `MultiLine`, but the block is a message to decrypt and verify (RETR).
    Message,
}

/// Longest keyword accepted; RFC 1939 keywords have 3 or 4 characters, extensions may be
/// longer (RFC 2449 §3 allows any), but never long.
const MAX_KEYWORD: usize = 32;

fn keyword_and_rest(line: &str) -> IResult<&str, (&str, Option<&str>)> {
    all_consuming((
        take_while1(|c: char| c.is_ascii_alphanumeric() || c == '-'),
        opt(preceded(char(' '), rest)),
    ))
    .parse(line)
}

/// Parses a command line given without its CRLF.
pub fn parse(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = core::str::from_utf8(line).map_err(|_| CommandError::NotText)?;
    let (_, (keyword, args)) = keyword_and_rest(line).map_err(|_| CommandError::Malformed)?;
    if keyword.len() > MAX_KEYWORD {
        return Err(CommandError::Malformed);
    }
    let args = args.unwrap_or("");
    let upper = keyword.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "CAPA" => Command::Capa,
        "USER" => Command::User(args.trim()),
        "PASS" => Command::Pass(args),
        "AUTH" => {
            let mut parts = args.trim().splitn(2, ' ');
            let mechanism = parts.next().unwrap_or("");
            let initial_response = parts.next().map(str::trim).filter(|s| !s.is_empty());
            Command::Auth {
                mechanism,
                initial_response,
            }
        }
        "QUIT" => Command::Quit,
        "STAT" => Command::Stat,
        "LIST" => Command::List(optional(args)),
        "UIDL" => Command::Uidl(optional(args)),
        "RETR" => Command::Retr(args.trim()),
        "TOP" => {
            let mut parts = args.split_ascii_whitespace();
            Command::Top {
                message: parts.next().unwrap_or(""),
                lines: parts.next().unwrap_or(""),
            }
        }
        _ => Command::Other(keyword),
    })
}

fn optional(a: &str) -> Option<&str> {
    let a = a.trim();
    (!a.is_empty()).then_some(a)
}

impl Command<'_> {
    /// The shape of the server's reply (RFC 1939 §5–7, RFC 2449 §5).
    pub fn reply_shape(&self) -> ReplyShape {
        match self {
            Command::Capa | Command::Top { .. } => ReplyShape::MultiLine,
            Command::List(None) | Command::Uidl(None) => ReplyShape::MultiLine,
            Command::Retr(_) => ReplyShape::Message,
            _ => ReplyShape::SingleLine,
        }
    }
}

/// The line to send upstream for `TOP message lines` (KOM-LE-A_2041), in canonical form.
///
/// A KOM-LE message's body is one base64 block of an encrypted CMS structure: any number of its
/// lines is meaningless to the client and cannot be decrypted on its own, and the Clientmodul
/// must not hand out fragments of an encrypted message. Only the (unencrypted) outer header is
/// useful, so a non-zero line count becomes 0. `None` means "send the line unchanged" (the
/// count is already zero, or the command is malformed; the PROXY state refuses those).
pub fn top_with_zero_lines(message: &str, lines: &str) -> Option<Vec<u8>> {
    let line = format!("TOP {message} {lines}");
    match CanonicalCommand::parse(line.as_bytes()) {
        Ok(top @ CanonicalCommand::Top { lines, .. }) if lines != 0 => {
            Some(top.with_zero_top_lines().to_line())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1939_keywords_are_case_insensitive() {
        assert_eq!(parse(b"capa"), Ok(Command::Capa));
        assert_eq!(parse(b"QuIt"), Ok(Command::Quit));
        assert_eq!(parse(b"stat"), Ok(Command::Stat));
        assert_eq!(parse(b"dele 3"), Ok(Command::Other("dele")));
    }

    #[test]
    fn a_2031_user_and_pass_arguments() {
        assert_eq!(
            parse(b"USER a@b.de#h:995#1#KOM_LE#7"),
            Ok(Command::User("a@b.de#h:995#1#KOM_LE#7"))
        );
        assert_eq!(
            parse(b"PASS geheim mit leer "),
            Ok(Command::Pass("geheim mit leer "))
        );
        assert_eq!(parse(b"USER"), Ok(Command::User("")));
    }

    #[test]
    fn a_2031_auth_with_and_without_initial_response() {
        assert_eq!(
            parse(b"AUTH PLAIN AHUAcA=="),
            Ok(Command::Auth {
                mechanism: "PLAIN",
                initial_response: Some("AHUAcA==")
            })
        );
        assert_eq!(
            parse(b"auth plain"),
            Ok(Command::Auth {
                mechanism: "plain",
                initial_response: None
            })
        );
        assert_eq!(
            parse(b"AUTH"),
            Ok(Command::Auth {
                mechanism: "",
                initial_response: None
            })
        );
    }

    #[test]
    fn a_2040_reply_shapes() {
        use ReplyShape::*;
        let cases: [(&[u8], ReplyShape); 10] = [
            (b"CAPA", MultiLine),
            (b"LIST", MultiLine),
            (b"LIST 1", SingleLine),
            (b"UIDL", MultiLine),
            (b"UIDL 2", SingleLine),
            (b"TOP 1 0", MultiLine),
            (b"RETR 1", Message),
            (b"STAT", SingleLine),
            (b"DELE 1", SingleLine),
            (b"XTND XMIT", SingleLine),
        ];
        for (line, shape) in cases {
            assert_eq!(parse(line).map(|c| c.reply_shape()), Ok(shape), "{line:?}");
        }
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        assert_eq!(parse(b""), Err(CommandError::Malformed));
        assert_eq!(parse(b" STAT"), Err(CommandError::Malformed));
        assert_eq!(parse(b"ST\tAT"), Err(CommandError::Malformed));
        assert_eq!(parse(b"PASS \xff"), Err(CommandError::NotText));
        assert_eq!(parse(&[b'A'; 40]), Err(CommandError::Malformed));
    }

    #[test]
    fn a_2041_top_line_count_becomes_zero() {
        assert_eq!(
            top_with_zero_lines("1", "10"),
            Some(b"TOP 1 0\r\n".to_vec())
        );
        assert_eq!(top_with_zero_lines("7", "1"), Some(b"TOP 7 0\r\n".to_vec()));
        assert_eq!(top_with_zero_lines("1", "0"), None);
        assert_eq!(top_with_zero_lines("1", "00"), None);
        assert_eq!(top_with_zero_lines("1", "x"), None);
        assert_eq!(top_with_zero_lines("", "5"), None);
        assert_eq!(
            parse(b"top 3 25"),
            Ok(Command::Top {
                message: "3",
                lines: "25"
            })
        );
    }
}
