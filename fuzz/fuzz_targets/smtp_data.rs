#![no_main]
//! DATA unstuffing: the same message and the same number of bytes consumed for any split of
//! the input.
#[path = "../drivers/smtp_data.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
