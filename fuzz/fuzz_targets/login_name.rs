#![no_main]
//! The login-name grammar (A_2010) on arbitrary input: never panics, and what parses keeps
//! its fields free of the separator.
#[path = "../drivers/login_name.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
