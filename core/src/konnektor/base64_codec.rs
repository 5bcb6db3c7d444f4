//! Base64 straight into and out of the SOAP buffers.
//!
//! WHY hand-driven: a 25 MB message becomes ~34 MB of base64. Encoding goes directly into the
//! pre-sized request buffer (no intermediate `String`, and base64 needs no XML escaping).
//! Decoding reads the borrowed text slices of the response, skips line breaks in chunks and
//! writes into one output buffer sized up front, so a payload is touched once each way.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};

/// Decoding accepts padded and unpadded input: some SOAP stacks drop the `=`.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Number of base64 characters for `len` input bytes (padded, no line breaks).
pub(crate) fn encoded_len(len: usize) -> usize {
    base64::encoded_len(len, true).unwrap_or(usize::MAX)
}

/// Appends the base64 encoding of `data` to `out` without an intermediate buffer.
pub(crate) fn append_encoded(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    let n = encoded_len(data.len());
    out.resize(start + n, 0);
    match STANDARD.encode_slice(data, &mut out[start..]) {
        Ok(written) => out.truncate(start + written),
        Err(_) => {
            // Unreachable by construction (the slice has exactly `encoded_len` bytes); fall back
            // to the streaming encoder rather than panic.
            out.truncate(start);
            let mut w = base64::write::EncoderWriter::new(&mut *out, &general_purpose::STANDARD);
            let _ = w.write_all(data);
            let _ = w.finish();
        }
    }
}

/// Appends the base64 encoding of the concatenation of `parts`, without joining them first:
/// the send pipeline signs a small head plus the mail's own bytes (see
/// `smime::wrap::SignInput`). Only the up to two bytes that straddle a part boundary are
/// gathered.
pub(crate) fn append_encoded_parts(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let mut carry: Vec<u8> = Vec::with_capacity(3);
    for (i, part) in parts.iter().enumerate() {
        let mut part = *part;
        if !carry.is_empty() {
            let take = (3 - carry.len()).min(part.len());
            carry.extend_from_slice(&part[..take]);
            part = &part[take..];
            if carry.len() < 3 {
                continue;
            }
            append_encoded(out, &carry);
            carry.clear();
        }
        // Whole 3-byte groups only, except for the last part (which may end padded).
        let whole = if i + 1 == parts.len() {
            part.len()
        } else {
            part.len() / 3 * 3
        };
        append_encoded(out, &part[..whole]);
        carry.extend_from_slice(&part[whole..]);
    }
    append_encoded(out, &carry);
}

/// Bytes gathered from short runs (line-wrapped base64) before one decode call; also the run
/// length from which a run is decoded straight from the input instead.
const CHUNK: usize = 64 * 1024;

/// Index of the first byte `<= b' '` (all ASCII whitespace and controls; every base64 symbol
/// is above it). Scans eight bytes at a time: long unwrapped payloads have none.
fn first_low_byte(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut skipped = 0;
    for chunk in s.chunks_exact(8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(bytes);
        // Non-zero iff some byte is < 0x21 (classic "hasless" bit trick).
        if x.wrapping_sub(ONES * 0x21) & !x & HIGH != 0 {
            break;
        }
        skipped += 8;
    }
    s[skipped..]
        .iter()
        .position(|&b| b <= b' ')
        .map(|p| skipped + p)
}

/// Output side of the decoder: one buffer sized up front.
struct Sink {
    out: Vec<u8>,
    pos: usize,
    padded: bool,
}

impl Sink {
    fn decode(&mut self, chunk: &[u8]) -> Result<(), ()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.padded {
            // Data after a padded quantum: not base64.
            return Err(());
        }
        let out = self.out.get_mut(self.pos..).ok_or(())?;
        let written = LENIENT.decode_slice(chunk, out).map_err(|_| ())?;
        self.pos += written;
        if chunk.last() == Some(&b'=') {
            self.padded = true;
        }
        Ok(())
    }
}

/// Incremental decoder over text pieces that may contain whitespace anywhere.
pub(crate) struct Decoder {
    sink: Sink,
    pending: Vec<u8>,
}

impl Decoder {
    /// A decoder whose output starts with `prefix`, then the decoded bytes of up to
    /// `input_len` base64 characters, in one buffer sized up front: a caller that wraps the
    /// payload in a header needs no second full-size buffer for the wrapped form.
    pub(crate) fn after(prefix: &[u8], input_len: usize) -> Decoder {
        let decoded = input_len.div_ceil(4).saturating_mul(3);
        let mut out = Vec::with_capacity(prefix.len().saturating_add(decoded));
        out.extend_from_slice(prefix);
        out.resize(prefix.len().saturating_add(decoded), 0);
        Decoder {
            sink: Sink {
                out,
                pos: prefix.len(),
                padded: false,
            },
            pending: Vec::new(),
        }
    }

    /// Feeds raw text; ASCII whitespace is skipped, other control bytes are an error.
    pub(crate) fn push(&mut self, text: &[u8]) -> Result<(), ()> {
        let mut rest = text;
        while let Some(p) = first_low_byte(rest) {
            if !rest[p].is_ascii_whitespace() {
                return Err(());
            }
            self.push_run(&rest[..p])?;
            rest = &rest[p + 1..];
        }
        self.push_run(rest)
    }

    fn push_run(&mut self, run: &[u8]) -> Result<(), ()> {
        if run.len() >= CHUNK {
            // Complete the pending quantum, then decode the run in place.
            let need = (4 - self.pending.len() % 4) % 4;
            let (head, run) = run.split_at(need);
            self.pending.extend_from_slice(head);
            self.sink.decode(&self.pending)?;
            self.pending.clear();
            let whole = run.len() / 4 * 4;
            self.sink.decode(&run[..whole])?;
            self.pending.extend_from_slice(&run[whole..]);
            return Ok(());
        }
        self.pending.extend_from_slice(run);
        if self.pending.len() >= CHUNK {
            let whole = self.pending.len() / 4 * 4;
            self.sink.decode(&self.pending[..whole])?;
            self.pending.drain(..whole);
        }
        Ok(())
    }

    /// Decodes what is left and returns the bytes.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, ()> {
        let pending = std::mem::take(&mut self.pending);
        self.sink.decode(&pending)?;
        let mut out = self.sink.out;
        out.truncate(self.sink.pos);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_pieces(pieces: &[&[u8]]) -> Result<Vec<u8>, ()> {
        let total = pieces.iter().map(|p| p.len()).sum();
        let mut d = Decoder::after(&[], total);
        for p in pieces {
            d.push(p)?;
        }
        d.finish()
    }

    #[test]
    fn append_encoded_matches_standard_engine() {
        for len in 0..70 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let mut out = b"<x>".to_vec();
            append_encoded(&mut out, &data);
            assert_eq!(&out[3..], STANDARD.encode(&data).as_bytes(), "len {len}");
        }
    }

    #[test]
    fn append_encoded_parts_matches_encoding_the_joined_parts() {
        let data: Vec<u8> = (0..40u32).map(|i| (i * 53 % 256) as u8).collect();
        for a in 0..8 {
            for b in a..12 {
                for c in b..16 {
                    let parts = [&data[..a], &data[a..b], &data[b..c], &data[c..]];
                    let mut out = b"<x>".to_vec();
                    append_encoded_parts(&mut out, &parts);
                    assert_eq!(&out[3..], STANDARD.encode(&data).as_bytes(), "{a} {b} {c}");
                }
            }
        }
        let mut out = Vec::new();
        append_encoded_parts(&mut out, &[b"A", b"", b"B"]);
        assert_eq!(out, STANDARD.encode(b"AB").as_bytes());
    }

    #[test]
    fn decoder_skips_whitespace_at_any_split() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 91 % 256) as u8).collect();
        let encoded = STANDARD.encode(&data);
        let wrapped: Vec<u8> = encoded
            .as_bytes()
            .chunks(7)
            .flat_map(|c| c.iter().copied().chain(*b"\r\n "))
            .collect();
        for split in [0, 1, 5, 63, 100, wrapped.len()] {
            let (a, b) = wrapped.split_at(split);
            assert_eq!(decode_pieces(&[a, b]), Ok(data.clone()), "split {split}");
        }
    }

    #[test]
    fn decoder_rejects_garbage_and_data_after_padding() {
        assert_eq!(decode_pieces(&[b"QQ==QQ=="]), Err(()));
        assert_eq!(decode_pieces(&[b"QQ==", b"QUJD"]), Err(()));
        assert_eq!(decode_pieces(&[b"Q!=="]), Err(()));
        assert_eq!(decode_pieces(&[b"Q"]), Err(()));
    }

    #[test]
    fn decoder_handles_long_runs_and_wrapped_lines_alike() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let encoded = STANDARD.encode(&data);
        assert_eq!(decode_pieces(&[encoded.as_bytes()]), Ok(data.clone()));
        let wrapped = encoded
            .as_bytes()
            .chunks(76)
            .collect::<Vec<_>>()
            .join(&b"\r\n"[..]);
        assert_eq!(decode_pieces(&[&wrapped]), Ok(data.clone()));
        // A long run that starts after an odd-length short run.
        let mut odd = encoded.as_bytes()[..3].to_vec();
        odd.push(b'\n');
        odd.extend_from_slice(&encoded.as_bytes()[3..]);
        assert_eq!(decode_pieces(&[&odd]), Ok(data));
    }

    #[test]
    fn first_low_byte_finds_whitespace_anywhere() {
        let mut s = vec![b'A'; 40];
        assert_eq!(first_low_byte(&s), None);
        for i in 0..40 {
            s[i] = b'\n';
            assert_eq!(first_low_byte(&s), Some(i));
            s[i] = b'A';
        }
        assert_eq!(first_low_byte(b"AAAAAAAA\x7f\xff "), Some(10));
    }

    #[test]
    fn decoder_rejects_control_bytes() {
        assert_eq!(decode_pieces(&[b"QU\x00JD"]), Err(()));
    }

    #[test]
    fn decoder_after_prefix_appends_the_decoded_bytes() {
        let mut d = Decoder::after(b"Header\r\n\r\n", 8);
        assert_eq!(d.push(b"QUJD\r\nREU="), Ok(()));
        assert_eq!(d.finish(), Ok(b"Header\r\n\r\nABCDE".to_vec()));
    }

    #[test]
    fn decoder_accepts_missing_padding() {
        assert_eq!(decode_pieces(&[b"QQ"]), Ok(b"A".to_vec()));
        assert_eq!(decode_pieces(&[b""]), Ok(Vec::new()));
    }
}
