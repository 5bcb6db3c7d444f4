//! The default-deny relay invariant of the SMTP proxy (KOM-LE-A_2018, A_2176, A_2017) as a
//! property over arbitrary client byte streams: lines from a grammar that mixes every verb (any
//! case) with every white-space and control variant (leading SP/TAB/VT/FF/CR/NUL/ESC, TAB
//! instead of SP, trailing junk, bare CR or LF line ends, overlong lines, UTF-8), valid
//! transactions and arbitrary bytes, cut into reads at random points, with directory and
//! Konnektor answers at random times and a random client close. The checks live in the shared
//! driver `fuzz/drivers/smtp_relay.rs` (also the `smtp_relay` fuzz target): every upstream line
//! is the module's canonical form of a parsed command, DATA only precedes the module's own
//! protected message, no RCPT without a `Usable` directory answer for exactly that address, no
//! control bytes upstream.

#[path = "../../fuzz/drivers/smtp_relay.rs"]
mod smtp_relay;

use proptest::prelude::*;
use smtp_relay::{Op, check_line, run_ops};

const VERBS: &[&str] = &[
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "AUTH", "STARTTLS",
    "VRFY", "EXPN", "HELP", "ETRN", "TURN", "XFOO", "",
];
const PREFIXES: &[&[u8]] = &[
    b"", b"", b"", b" ", b"\t", b"\x0b", b"\x0c", b"\r", b"\x00", b"\x1b", b"  ",
];
const SEPARATORS: &[&[u8]] = &[
    b" ", b" ", b" ", b"\t", b"  ", b"\x0b", b"\x0c", b"", b"\x00", b":",
];
const ARGS: &[&str] = &[
    "",
    "FROM:<a@b.de>",
    "from:<a@b.de> SIZE=100 BODY=8BITMIME",
    "FROM:<>",
    "FROM: <a@b.de> X-FOO=1",
    "FROM:<a@b.de> SMTPUTF8 ENVID=x+2B",
    "TO:<x@y.de>",
    "to:<x@y.de> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.de",
    "TO:<@r.de:z@y.de>",
    "TO:<\"q u\"@y.de>",
    "TO:<jörg@bücher.de>",
    "TO:<x@y.de>\u{0}",
    "TO:<ohne-at>",
    "client.example",
    "[192.168.1.5]",
    "PLAIN AHVzZXIAcHc=",
    "10 LAST",
    "x",
];
const SUFFIXES: &[&[u8]] = &[
    b"",
    b"",
    b"",
    b" ",
    b"\t",
    b"\x00",
    b"\x1b[0m",
    b"\r",
    b" junk",
    "ü".as_bytes(),
];
const ENDS: &[&[u8]] = &[b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"];
const BODY: &[&[u8]] = &[
    b"Subject: x\r\n",
    b"\r\n",
    b".\r\n",
    b"..stuffed\r\n",
    b"body\n.\n",
    b"MAIL FROM:<evil@x.de>\r\n",
];
/// A transaction that must end with the protected message at the MTA when everyone agrees.
const TRANSACTION: &[u8] = b"MAIL FROM:<a@b.de>\r\nRCPT TO:<x@y.de>\r\nRCPT TO:<z@y.de>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n";

fn cased(word: &str, how: u8) -> String {
    match how % 3 {
        0 => word.to_owned(),
        1 => word.to_ascii_lowercase(),
        _ => word
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect(),
    }
}

fn pick<T: Clone + core::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

fn command_line() -> impl Strategy<Value = Vec<u8>> {
    (
        pick(PREFIXES),
        pick(VERBS),
        any::<u8>(),
        pick(SEPARATORS),
        pick(ARGS),
        pick(SUFFIXES),
        pick(ENDS),
    )
        .prop_map(|(prefix, verb, case, sep, args, suffix, end)| {
            let mut l = prefix.to_vec();
            l.extend_from_slice(cased(verb, case).as_bytes());
            if !args.is_empty() {
                l.extend_from_slice(sep);
                l.extend_from_slice(args.as_bytes());
            }
            l.extend_from_slice(suffix);
            l.extend_from_slice(end);
            l
        })
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => command_line(),
        2 => pick(BODY).prop_map(<[u8]>::to_vec),
        2 => Just(TRANSACTION.to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => any::<String>().prop_map(|s| format!("{s}\r\n").into_bytes()),
        1 => (1usize..3).prop_map(|n| {
            let mut l = b"NOOP ".to_vec();
            l.resize(700 * n, b'a');
            l.extend_from_slice(b"\r\n");
            l
        }),
    ]
}

/// Something other than client bytes, after the read with the given index.
#[derive(Clone, Debug)]
enum Extra {
    Answer,
    Advance(u64),
    Close,
}

fn extra() -> impl Strategy<Value = Extra> {
    prop_oneof![
        4 => Just(Extra::Answer),
        2 => (1u64..4000).prop_map(Extra::Advance),
        1 => Just(Extra::Close),
    ]
}

fn ops(pieces: Vec<Vec<u8>>, cuts: Vec<usize>, extras: Vec<(usize, Extra)>) -> Vec<Op> {
    let stream = pieces.concat();
    let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(stream.len());
    let mut out = Vec::new();
    let mut last = 0;
    for (i, cut) in cuts.into_iter().enumerate() {
        out.push(Op::Client(stream[last..cut].to_vec()));
        last = cut;
        for (_, e) in extras.iter().filter(|(at, _)| *at == i) {
            out.push(match e {
                Extra::Answer => Op::AnswerPending,
                Extra::Advance(s) => Op::Advance(*s),
                Extra::Close => Op::ClientClose,
            });
        }
    }
    out.push(Op::AnswerPending);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn a_2018_a_2176_only_canonical_checked_commands_and_protected_messages_reach_the_mta(
        seed in any::<u64>(),
        pieces in proptest::collection::vec(piece(), 1..24),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
        extras in proptest::collection::vec((0usize..24, extra()), 0..8),
        close_at_end in any::<bool>(),
    ) {
        let mut ops = ops(pieces, cuts, extras);
        if close_at_end {
            ops.push(Op::ClientClose);
        }
        run_ops(seed, &ops);
    }
}

/// The harness is not vacuous: a valid transaction, with the directory and the Konnektor
/// agreeing, delivers exactly one protected message through the checks.
#[test]
fn a_2018_valid_transaction_passes_the_checks_and_delivers_the_protected_message() {
    let mut delivered = 0;
    let mut discards = 0;
    for seed in 0..200u64 {
        let ops = [
            Op::Client(TRANSACTION.to_vec()),
            Op::AnswerPending,
            Op::AnswerPending,
            Op::AnswerPending,
            Op::AnswerPending,
            Op::Client(b"QUIT\r\n".to_vec()),
        ];
        let stats = run_ops(seed, &ops);
        assert!(stats.relayed_lines >= 1);
        delivered += stats.messages;
        discards += stats.kas_discards;
    }
    // The harness refuses at random (directory, MTA, Konnektor); many runs still deliver.
    assert!(delivered > 20, "only {delivered} of 200 runs delivered");
    // KIM 1.5: some refused messages carried KAS data, and their deletion was asked for.
    assert!(discards > 0, "no KAS data discarded in 200 runs");
}

#[test]
fn a_2018_checker_accepts_canonical_lines() {
    check_line(b"MAIL FROM:<a@b.de> SIZE=10\r\n");
    check_line(b"RCPT TO:<x@y.de>\r\n");
    check_line(b"DATA\r\n");
}

#[test]
#[should_panic(expected = "parses")]
fn a_2018_checker_catches_a_leading_space_data() {
    check_line(b" DATA\r\n");
}

#[test]
#[should_panic(expected = "not canonical")]
fn a_2018_checker_catches_a_non_canonical_line() {
    check_line(b"mail from:<a@b.de>\r\n");
}

#[test]
#[should_panic(expected = "control character")]
fn a_2018_checker_catches_control_bytes() {
    check_line(b"RCPT\tTO:<x@y.de>\r\n");
}

#[test]
#[should_panic(expected = "relayed verb")]
fn a_2018_checker_catches_bdat() {
    check_line(b"BDAT 5 LAST\r\n");
}
