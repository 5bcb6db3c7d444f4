#![no_main]
//! The SMTP reply collector on arbitrary MTA lines: a complete reply has one code on every
//! line and gives back exactly the bytes it consumed; nothing panics.
#[path = "../drivers/smtp_reply.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
