#![no_main]
//! The SMTP session on an arbitrary interleaving of client bytes, MTA bytes, events and time:
//! it never panics, and once closed it stays quiet.
#[path = "../drivers/smtp_session.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
