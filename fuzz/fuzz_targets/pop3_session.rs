#![no_main]
//! The POP3 session on an arbitrary interleaving of client bytes, server bytes, events and
//! time: it never panics, never sends to the client after closing it, and its timeout never
//! lies before the start.
#[path = "../drivers/pop3_session.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
