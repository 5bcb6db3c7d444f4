//! POP3 codecs on arbitrary bytes: the command parser (what parses has a reply shape and a
//! well-formed TOP rewrite) and the multi-line decoder, which must give the same content,
//! the same consumed count and the same end for any split of the input (replies arrive in
//! arbitrary TCP chunks, A_2040 relays them).
use komle_core::pop3::{Command, MultilineDecoder, parse_command, top_with_zero_lines};

/// Feeds `chunks` until the block ends; returns (content, consumed, done).
fn decode(chunks: &[&[u8]]) -> (Vec<u8>, usize, bool) {
    let mut d = MultilineDecoder::new();
    let mut out = Vec::new();
    let mut used = 0;
    for c in chunks {
        let fed = d.feed(c, |s| out.extend_from_slice(s));
        assert!(fed.consumed <= c.len());
        used += fed.consumed;
        if fed.done {
            return (out, used, true);
        }
        assert_eq!(
            fed.consumed,
            c.len(),
            "stopped early without the terminator"
        );
    }
    (out, used, false)
}

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    if let Ok(cmd) = parse_command(data) {
        let _ = cmd.reply_shape();
        if let Command::Top { message, lines } = cmd
            && let Some(line) = top_with_zero_lines(message, lines)
        {
            assert!(
                line.ends_with(b" 0\r\n"),
                "TOP rewrite must ask for 0 lines"
            );
        }
    }
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize).min(body.len());
    let whole = decode(&[body]);
    let split = decode(&[&body[..cut], &body[cut..]]);
    let bytewise: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(whole, split);
    assert_eq!(whole, decode(&bytewise));
    // Unstuffing never adds bytes.
    assert!(whole.0.len() <= whole.1);
}
