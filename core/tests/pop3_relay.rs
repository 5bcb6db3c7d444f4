//! KOM-LE-A_2040 default deny, as a property: whatever bytes a logged-in client sends — every
//! keyword in any case, every whitespace and control variant, UTF-8, arbitrary bytes, cut into
//! arbitrary TCP chunks, with the client hanging up anywhere — the POP3 server only ever
//! receives lines the module parsed and wrote itself, exactly those an independent reading of
//! RFC 1939 accepts, and nothing after a client close that the client did not send complete.
//! The checks live in the driver shared with the fuzz target `pop3_relay`.

#[path = "../../fuzz/drivers/pop3_relay.rs"]
mod pop3_relay;

use komle_core::pop3::{CanonicalCommand, MALFORMED, NOT_RELAYED};
use pop3_relay::{MAX_LINE, reference, relay};
use proptest::prelude::*;
use proptest::sample::Index;

const KEYWORDS: &[&str] = &[
    "STAT", "LIST", "UIDL", "RETR", "DELE", "TOP", "NOOP", "RSET", "QUIT", "CAPA", "APOP", "STLS",
    "AUTH", "USER", "PASS", "UTF8", "LANG", "XTND", "LAST", "RETRX", "TO", "STÄT",
];

fn keyword() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (
            proptest::sample::select(KEYWORDS),
            proptest::collection::vec(any::<bool>(), 5)
        )
            .prop_map(|(k, lower)| {
                k.chars()
                    .zip(lower.iter().cycle())
                    .map(|(c, l)| if *l { c.to_ascii_lowercase() } else { c })
                    .collect::<String>()
                    .into_bytes()
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..6),
    ]
}

fn argument() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (1u32..12).prop_map(|n| n.to_string().into_bytes()),
        2 => proptest::sample::select(&[
            "0", "007", "00", "9999999", "10000000", "4294967295", "4294967296", "99999999999",
            "x", "-1", "+1", "1.0", "ä", "١",
        ][..])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => "[ -~]{0,6}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..4),
    ]
}

fn whitespace() -> impl Strategy<Value = &'static [u8]> {
    proptest::sample::select(vec![
        &b" "[..],
        b" ",
        b" ",
        b"  ",
        b"\t",
        b"\x0b",
        b"\x0c",
        b"\r",
        b"\0",
        b"\x1b",
        b"\x7f",
        "\u{a0}".as_bytes(),
    ])
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    let prefix = proptest::sample::select(vec![&b""[..], b"", b"", b" ", b"\t", b"\0", b"\x1b"]);
    let end = proptest::sample::select(vec![&b"\r\n"[..], b"\r\n", b"\n", b"\r\r\n", b"", b"\r"]);
    let structured = (
        prefix,
        keyword(),
        proptest::collection::vec((whitespace(), argument()), 0..3),
        proptest::sample::select(vec![&b""[..], b"", b" ", b"\t", b"\r", b"\0"]),
        end,
    )
        .prop_map(|(prefix, keyword, args, trailing, end)| {
            let mut l = prefix.to_vec();
            l.extend_from_slice(&keyword);
            for (ws, a) in args {
                l.extend_from_slice(ws);
                l.extend_from_slice(&a);
            }
            l.extend_from_slice(trailing);
            l.extend_from_slice(end);
            l
        });
    prop_oneof![
        8 => structured,
        1 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => proptest::collection::vec(any::<u8>(), 0..8).prop_map(|mut v| {
            v.extend_from_slice(b"\r\n");
            v
        }),
        1 => (MAX_LINE - 8..MAX_LINE + 8).prop_map(|n| {
            let mut v = b"NOOP".to_vec();
            v.resize(n - 2, b' ');
            v.extend_from_slice(b"\r\n");
            v
        }),
    ]
}

fn session() -> impl Strategy<Value = (Vec<u8>, Vec<Index>, Option<Index>)> {
    (
        proptest::collection::vec(line(), 0..24).prop_map(|l| l.concat()),
        proptest::collection::vec(any::<Index>(), 0..10),
        proptest::option::of(any::<Index>()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Every line the server receives parses with the module's own parser and re-serialises
    /// byte for byte, holds no control byte, is exactly what the reference accepts (in order,
    /// up to QUIT), and a client close adds nothing; the client gets one answer per line in
    /// order. The assertions are in `pop3_relay::relay`.
    #[test]
    fn a_2040_only_canonical_commands_reach_the_server(
        (stream, cuts, close) in session()
    ) {
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        let close_at = close.map(|i| i.index(stream.len() + 1));
        relay(&stream, &cuts, close_at);
    }

    /// The module's parser and the reference agree on every single line, and what the module
    /// writes parses back to the same command.
    #[test]
    fn a_2040_parser_agrees_with_the_reference(l in line()) {
        let body = l.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let trimmed = body.strip_suffix(b"\r").unwrap_or(body);
        let module = CanonicalCommand::parse(trimmed)
            .map(|c| c.with_zero_top_lines().to_line())
            .map_err(|r| r.text());
        prop_assert_eq!(&module, &reference(body));
        if let Ok(line) = module {
            let again = CanonicalCommand::parse(&line[..line.len() - 2]).unwrap();
            prop_assert_eq!(again.to_line(), line);
        }
    }
}

#[test]
fn a_2040_reference_examples() {
    assert_eq!(reference(b"retr 007\r"), Ok(b"RETR 7\r\n".to_vec()));
    assert_eq!(reference(b"TOP 1 99"), Ok(b"TOP 1 0\r\n".to_vec()));
    assert_eq!(reference(b" STAT"), Err(MALFORMED));
    assert_eq!(reference(b"STAT\r\r"), Err(MALFORMED));
    assert_eq!(reference(b"APOP a b"), Err(NOT_RELAYED));
}

#[test]
fn a_2040_a_2039_relay_scenarios() {
    // Pipelined mix, refused lines between, a RETR, QUIT; then bytes the server never sees.
    let out = relay(
        b"stat\r\n STAT\r\nTOP 1 5\r\nRETR 2\r\nLIST\t1\r\nDELE 2\r\nQUIT\r\nDELE 3\r\n",
        &[3, 17, 40],
        None,
    );
    let lines: Vec<&[u8]> = out.upstream.iter().map(Vec::as_slice).collect();
    assert_eq!(
        lines,
        [
            &b"STAT\r\n"[..],
            b"TOP 1 0\r\n",
            b"RETR 2\r\n",
            b"DELE 2\r\n",
            b"QUIT\r\n"
        ]
    );
    // The client hangs up after a DELE and half a QUIT: no QUIT goes out.
    let out = relay(b"DELE 1\r\nQUIT\r\n", &[], Some(11));
    assert_eq!(out.upstream, [b"DELE 1\r\n".to_vec()]);
    assert!(out.closed_upstream);
}

#[test]
fn fuzz_driver_accepts_short_and_odd_inputs() {
    pop3_relay::run(b"");
    pop3_relay::run(b"\x03");
    pop3_relay::run(b"\x00\x00STAT\r\n");
    pop3_relay::run(b"\x05\xffDELE 1\r\nQUIT\r\nRETR 1\r\n");
    pop3_relay::run(b"\x01\x41 \x00\t\x0b\x0c\r\r\n\xc3\xa4\r\nretr 1\n");
}
