#![no_main]
//! POP3 codecs on arbitrary bytes: the command parser (what parses has a reply shape and a
//! well-formed TOP rewrite) and the multi-line decoder, which must give the same content,
//! the same consumed count and the same end for any split of the input (replies arrive in
//! arbitrary TCP chunks, A_2040 relays them).
#[path = "../drivers/pop3_codec.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
