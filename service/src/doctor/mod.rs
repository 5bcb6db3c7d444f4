//! Diagnosis: what `--check-config` and the start check offline ([`preflight`]: files and
//! ports), and what `komle-cm doctor` checks against the live dependencies ([`checks`]).

pub mod checks;
pub mod preflight;
