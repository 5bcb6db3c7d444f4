//! DATA unstuffing: the same message and the same number of bytes consumed for any split of
//! the input.
use komle_core::smtp::data::{DataOutcome, DataReader};

fn read(chunks: &[&[u8]]) -> Option<(Vec<u8>, usize)> {
    let mut r = DataReader::new(1 << 20);
    let mut used = 0;
    for c in chunks {
        used += r.feed(c);
        if r.is_done() {
            break;
        }
    }
    if !r.is_done() {
        return None;
    }
    match r.finish() {
        DataOutcome::Complete(m) => Some((m.as_slice().to_vec(), used)),
        DataOutcome::TooLarge => None,
    }
}

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let cut = data[0] as usize % data.len();
    let body = &data[1..];
    let cut = cut.min(body.len());
    let whole = read(&[body]);
    let split = read(&[&body[..cut], &body[cut..]]);
    assert_eq!(whole, split);
}
