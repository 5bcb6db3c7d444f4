//! Rebuilding a large buffer in place: the delivered mail of a KAS message is the client mail
//! with a new header block, a note inserted into its text and the report appended (A_2179-01,
//! A_2050-05), so almost all of it is ranges of the fetched client mail in the same order.
//!
//! WHY: a mail fetched from the KAS can be hundreds of MB (issue 17). Building the delivered
//! mail beside the fetched one held it twice; moving the ranges inside the fetched mail's own
//! buffer holds it once. The small pieces in between (headers, note, report) are copied in.

use core::ops::Range;

/// One piece of the rebuilt buffer: bytes of its own, or a range of the original buffer.
/// The `Src` ranges of a plan must be ascending and must not overlap.
#[derive(Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(Vec<u8>),
    Src(Range<usize>),
}

impl core::fmt::Debug for Piece {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Content never shows, lengths and ranges only.
        match self {
            Self::Lit(b) => write!(f, "Lit(<{} bytes>)", b.len()),
            Self::Src(r) => write!(f, "Src({r:?})"),
        }
    }
}

// Capacity from which the buffer grows with `realloc` (pages moved, not copied).
use crate::secret::MOVED_BY_REALLOC;

/// Turns `buf` into the concatenation of `plan`, where `Src` pieces name ranges of `buf` as it
/// is now. Ranges that move left are moved in ascending order, those that move right in
/// descending order, the literal pieces are written last: no range is overwritten before it
/// has been moved (the targets are ascending and disjoint, as the sources are). Bytes of the
/// old buffer that the plan does not keep are overwritten or cut off.
///
/// Returns `false`, leaving `buf` untouched, when a `Src` range is out of bounds or the ranges
/// are not ascending.
pub fn assemble(buf: &mut Vec<u8>, plan: &[Piece]) -> bool {
    // Where each piece goes.
    let mut moves: Vec<(usize, Range<usize>)> = Vec::new();
    let mut target = 0usize;
    let mut last_end = 0usize;
    for p in plan {
        match p {
            Piece::Lit(b) => target += b.len(),
            Piece::Src(r) => {
                if r.start > r.end || r.end > buf.len() || r.start < last_end {
                    return false;
                }
                last_end = r.end;
                moves.push((target, r.clone()));
                target += r.len();
            }
        }
    }
    let new_len = target;
    if new_len > buf.len() {
        grow(buf, new_len);
        buf.resize(new_len, 0);
    }
    for (t, r) in moves.iter().filter(|(t, r)| *t < r.start) {
        buf.copy_within(r.clone(), *t);
    }
    for (t, r) in moves.iter().rev().filter(|(t, r)| *t > r.start) {
        buf.copy_within(r.clone(), *t);
    }
    let mut at = 0usize;
    for p in plan {
        match p {
            Piece::Lit(b) => {
                buf[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            }
            Piece::Src(r) => at += r.len(),
        }
    }
    if new_len < buf.len() {
        // The cut-off tail held mail content: wiped, not just forgotten.
        zeroize::Zeroize::zeroize(&mut buf[new_len..]);
        buf.truncate(new_len);
    }
    true
}

/// Room for `len` bytes: large buffers grow by `realloc` (pages moved, not copied), small
/// ones by a copy after which the old buffer is wiped (KOM-LE-A_2005).
pub fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.capacity() >= len {
        return;
    }
    if buf.capacity() >= MOVED_BY_REALLOC {
        buf.reserve_exact(len - buf.len());
        return;
    }
    let mut bigger = Vec::with_capacity(len);
    bigger.extend_from_slice(buf);
    zeroize::Zeroize::zeroize(buf);
    *buf = bigger;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(orig: &[u8], plan: &[Piece]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in plan {
            match p {
                Piece::Lit(b) => out.extend_from_slice(b),
                Piece::Src(r) => out.extend_from_slice(&orig[r.clone()]),
            }
        }
        out
    }

    /// A plan from cut points: ascending ranges of the original with literals between.
    fn plan_from(len: usize, cuts: &[usize], lits: &[Vec<u8>]) -> Vec<Piece> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
        cuts.sort_unstable();
        let mut plan = Vec::new();
        let mut lit = lits.iter();
        for w in cuts.chunks(2) {
            if let Some(l) = lit.next() {
                plan.push(Piece::Lit(l.clone()));
            }
            if let [a, b] = w {
                plan.push(Piece::Src(*a..*b));
            }
        }
        for l in lit {
            plan.push(Piece::Lit(l.clone()));
        }
        plan
    }

    proptest! {
        #[test]
        fn in_place_assembly_equals_concatenation(
            orig in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(0usize..1000, 0..10),
            lits in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
        ) {
            let plan = plan_from(orig.len(), &cuts, &lits);
            let expected = naive(&orig, &plan);
            let mut buf = orig.clone();
            prop_assert!(assemble(&mut buf, &plan));
            prop_assert_eq!(buf, expected);
        }
    }

    #[test]
    fn header_replaced_note_inserted_report_appended() {
        let mut buf = b"Subject: a\r\n\r\nbody line 1\r\nbody line 2\r\n".to_vec();
        let plan = [
            Piece::Lit(b"X-Long-New-Header: yes\r\nSubject: a\r\n\r\n".to_vec()),
            Piece::Src(14..27),
            Piece::Lit(b"NOTE\r\n".to_vec()),
            Piece::Src(27..40),
            Piece::Lit(b"--report--\r\n".to_vec()),
        ];
        assert!(assemble(&mut buf, &plan));
        assert_eq!(
            buf,
            b"X-Long-New-Header: yes\r\nSubject: a\r\n\r\nbody line 1\r\nNOTE\r\nbody line 2\r\n--report--\r\n"
        );
        // Shrinking: a shorter header, part of the body dropped.
        let mut buf = b"Very-Long-Header: 123456789\r\n\r\nkeep".to_vec();
        assert!(assemble(
            &mut buf,
            &[Piece::Lit(b"H: 1\r\n\r\n".to_vec()), Piece::Src(31..35)]
        ));
        assert_eq!(buf, b"H: 1\r\n\r\nkeep");
    }

    #[test]
    fn ranges_out_of_bounds_or_out_of_order_are_refused_untouched() {
        let mut buf = b"abcdef".to_vec();
        assert!(!assemble(&mut buf, &[Piece::Src(2..9)]));
        assert!(!assemble(&mut buf, &[Piece::Src(3..4), Piece::Src(1..2)]));
        assert_eq!(buf, b"abcdef");
    }
}
