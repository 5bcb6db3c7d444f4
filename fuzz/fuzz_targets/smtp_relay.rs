#![no_main]
//! The default-deny relay invariant of the SMTP proxy (A_2018, A_2176, A_2017): after a login,
//! only canonical forms of parsed commands, RCPTs with a `Usable` directory answer and the
//! module's own protected message reach the MTA, whatever the client sends.
#[path = "../drivers/smtp_relay.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
