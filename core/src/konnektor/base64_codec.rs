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

/// Chunk size for decoding input that contains whitespace (a multiple of 4).
const CHUNK: usize = 16 * 1024;

/// Incremental decoder over text pieces that may contain whitespace anywhere.
pub(crate) struct Decoder {
    out: Vec<u8>,
    pos: usize,
    pending: Vec<u8>,
    padded: bool,
}

impl Decoder {
    /// A decoder whose output buffer is sized for `input_len` base64 characters.
    pub(crate) fn with_input_len(input_len: usize) -> Decoder {
        Decoder {
            out: vec![0; input_len.div_ceil(4).saturating_mul(3)],
            pos: 0,
            pending: Vec::new(),
            padded: false,
        }
    }

    fn decode_chunk(&mut self, chunk: &[u8]) -> Result<(), ()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.padded {
            // Data after a padded quantum: not base64.
            return Err(());
        }
        let written = LENIENT
            .decode_slice(chunk, &mut self.out[self.pos..])
            .map_err(|_| ())?;
        self.pos += written;
        if chunk.last() == Some(&b'=') {
            self.padded = true;
        }
        Ok(())
    }

    /// Feeds raw text; whitespace is skipped.
    pub(crate) fn push(&mut self, text: &[u8]) -> Result<(), ()> {
        for run in text.split(u8::is_ascii_whitespace) {
            let mut run = run;
            if run.is_empty() {
                continue;
            }
            if !self.pending.is_empty() {
                let need = (4 - self.pending.len() % 4) % 4;
                let take = need.min(run.len());
                self.pending.extend_from_slice(&run[..take]);
                run = &run[take..];
                if self.pending.len() % 4 == 0 {
                    let pending = std::mem::take(&mut self.pending);
                    self.decode_chunk(&pending)?;
                    self.pending = pending;
                    self.pending.clear();
                }
            }
            // Whole quanta go straight from the input slice to the output.
            let whole = run.len() / 4 * 4;
            let (direct, rest) = run.split_at(whole);
            for chunk in direct.chunks(CHUNK * 64) {
                self.decode_chunk(chunk)?;
            }
            self.pending.extend_from_slice(rest);
        }
        Ok(())
    }

    /// Decodes what is left and returns the bytes.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, ()> {
        let pending = std::mem::take(&mut self.pending);
        self.decode_chunk(&pending)?;
        let mut out = self.out;
        out.truncate(self.pos);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_pieces(pieces: &[&[u8]]) -> Result<Vec<u8>, ()> {
        let total = pieces.iter().map(|p| p.len()).sum();
        let mut d = Decoder::with_input_len(total);
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
    fn decoder_accepts_missing_padding() {
        assert_eq!(decode_pieces(&[b"QQ"]), Ok(b"A".to_vec()));
        assert_eq!(decode_pieces(&[b""]), Ok(Vec::new()));
    }
}
