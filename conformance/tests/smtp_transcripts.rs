//! Replays every SMTP transcript in `conformance/transcripts/smtp` against the sans-IO core,
//! byte-exact, once with each input in one piece and then, as a property, with every input cut
//! at random byte boundaries (the result must not depend on how reads are split).

use std::path::PathBuf;

use komle_conformance::transcript::{self, Transcript};
use proptest::prelude::*;

fn transcripts() -> Vec<Transcript> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("transcripts/smtp");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("transcript directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(p).expect("read transcript");
            Transcript::parse(&name, &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

#[test]
fn every_transcript_replays_byte_exact() {
    let all = transcripts();
    assert!(all.len() >= 40, "only {} transcripts", all.len());
    let failures: Vec<String> = all
        .iter()
        .filter_map(|t| transcript::run(t, &mut transcript::whole).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn every_transcript_gives_the_same_result_for_any_split_of_its_reads(
        sizes in proptest::collection::vec(1usize..12, 1..64)
    ) {
        for t in transcripts() {
            let mut i = 0;
            let mut split = |len: usize| {
                let mut out = Vec::new();
                let mut total = 0;
                while total < len {
                    let s = sizes[i % sizes.len()];
                    i += 1;
                    out.push(s);
                    total += s;
                }
                out
            };
            let r = transcript::run(&t, &mut split);
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }
}
