//! Replays every POP3 transcript in `conformance/transcripts/pop3` against the sans-IO core,
//! byte-exact, once with each input in one piece and then, as a property, with every input cut
//! at random byte boundaries (the result must not depend on how reads are split). The runner
//! is the one the SMTP transcripts use (`komle_conformance::transcript`).

use komle_conformance::transcript::{self, Protocol, Transcript};
use proptest::prelude::*;

fn transcripts() -> Vec<Transcript> {
    Transcript::load(Protocol::Pop3).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_transcript_replays_byte_exact() {
    let all = transcripts();
    assert!(all.len() >= 70, "only {} transcripts", all.len());
    let failures = transcript::failures_whole(&all);
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
        let r = transcript::first_failure_split(&transcripts(), &sizes);
        prop_assert!(r.is_ok(), "{:?}", r);
    }
}
