//! SMTP command lines from the client (RFC 5321 §4.1), parsed with nom.
//!
//! Only what the Clientmodul must understand is parsed: the verb, and for MAIL/RCPT the path.
//! Everything else is relayed as the client sent it (KOM-LE-A_2018).

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{tag_no_case, take_till, take_while, take_while1};
use nom::character::complete::char;
use nom::sequence::delimited;

/// The verbs the state machine distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Auth,
    Starttls,
    Bdat,
    /// Anything else: VRFY, EXPN, HELP, unknown words.
    Other,
}

/// One command line, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    pub verb: Verb,
    /// What follows the verb and one space, without the line end.
    pub args: &'a [u8],
}

/// Parses a command line (without its line end). Never fails: what is not a known verb is
/// [`Verb::Other`].
pub fn parse(line: &[u8]) -> Command<'_> {
    let word_end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
    let word = &line[..word_end];
    let args = line.get(word_end + 1..).unwrap_or(&[]);
    let verb = match word.to_ascii_uppercase().as_slice() {
        b"HELO" => Verb::Helo,
        b"EHLO" => Verb::Ehlo,
        b"MAIL" => Verb::Mail,
        b"RCPT" => Verb::Rcpt,
        b"DATA" => Verb::Data,
        b"RSET" => Verb::Rset,
        b"NOOP" => Verb::Noop,
        b"QUIT" => Verb::Quit,
        b"AUTH" => Verb::Auth,
        b"STARTTLS" => Verb::Starttls,
        b"BDAT" => Verb::Bdat,
        _ => Verb::Other,
    };
    Command { verb, args }
}

fn path(input: &[u8]) -> IResult<&[u8], &[u8]> {
    delimited(char('<'), take_till(|b| b == b'>'), char('>')).parse(input)
}

fn spaces(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(|b| b == b' ').parse(input)
}

/// The reverse path of `MAIL FROM:<path> [params]`; the null path `<>` is an empty string.
pub fn mail_from(args: &[u8]) -> Option<String> {
    let (_, (_, _, p)) = (tag_no_case("FROM:"), spaces, path).parse(args).ok()?;
    mailbox_text(p)
}

/// The forward path of `RCPT TO:<path> [params]`; must be a non-empty mailbox.
pub fn rcpt_to(args: &[u8]) -> Option<String> {
    let (_, (_, _, p)) = (tag_no_case("TO:"), spaces, path).parse(args).ok()?;
    let mailbox = mailbox_text(p)?;
    let (local, domain) = mailbox.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some(mailbox)
}

/// Source routes (`@a,@b:user@c`, RFC 5321 §4.1.2) are dropped; control characters refused.
fn mailbox_text(p: &[u8]) -> Option<String> {
    let p = match p.iter().position(|b| *b == b':') {
        Some(i) if p.first() == Some(&b'@') => &p[i + 1..],
        _ => p,
    };
    let (rest, mailbox) = take_while1::<_, _, ()>(|b: u8| b > b' ' && b != 0x7f)
        .parse(p)
        .unwrap_or((p, &[][..]));
    if !rest.is_empty() {
        return None;
    }
    String::from_utf8(mailbox.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_case_insensitive_and_args_kept_verbatim() {
        let c = parse(b"mail FROM:<a@b.de> SIZE=10");
        assert_eq!(c.verb, Verb::Mail);
        assert_eq!(c.args, b"FROM:<a@b.de> SIZE=10");
        assert_eq!(parse(b"QUIT").verb, Verb::Quit);
        assert_eq!(parse(b"VRFY x").verb, Verb::Other);
        assert_eq!(parse(b"").verb, Verb::Other);
        assert_eq!(parse(b"EHLO").args, b"");
    }

    #[test]
    fn paths() {
        assert_eq!(mail_from(b"FROM:<a@b.de>").as_deref(), Some("a@b.de"));
        assert_eq!(
            mail_from(b"from: <a@b.de> BODY=8BITMIME").as_deref(),
            Some("a@b.de")
        );
        assert_eq!(mail_from(b"FROM:<>").as_deref(), Some(""));
        assert_eq!(mail_from(b"FROM:a@b.de"), None);
        assert_eq!(rcpt_to(b"TO:<x@y.de>").as_deref(), Some("x@y.de"));
        assert_eq!(rcpt_to(b"TO:<@relay.de:x@y.de>").as_deref(), Some("x@y.de"));
        assert_eq!(rcpt_to(b"TO:<>"), None);
        assert_eq!(rcpt_to(b"TO:<no-domain>"), None);
        assert_eq!(rcpt_to(b"TO:<a b@c.de>"), None);
        assert_eq!(rcpt_to(b"TO:<x@y.de"), None);
    }
}
