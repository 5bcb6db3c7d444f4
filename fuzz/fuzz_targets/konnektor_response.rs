#![no_main]
//! Every Konnektor SOAP response parser and the service directory (connector.sds) on the same
//! arbitrary bytes: a hostile or broken Konnektor yields typed errors, never a panic.
#[path = "../drivers/konnektor_response.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
