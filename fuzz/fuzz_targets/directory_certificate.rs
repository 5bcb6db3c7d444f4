#![no_main]
//! Certificate inspection and selection on directory data (A_17464, A_2030 ff.): the VZD is
//! outside our control, so any bytes as certificates or attributes must give a verdict, not a
//! panic. Input: `name\0value\0name\0value…`; every value is also tried as a certificate.
#[path = "../drivers/directory_certificate.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
