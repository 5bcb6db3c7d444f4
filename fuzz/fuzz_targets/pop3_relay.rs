#![no_main]
//! The POP3 relay after login on arbitrary client bytes (KOM-LE-A_2040 default deny): only
//! canonical commands reach the server, exactly those the RFC 1939 reference accepts, nothing
//! extra after a client close, one answer per client line in order. See the driver.
#[path = "../drivers/pop3_relay.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
