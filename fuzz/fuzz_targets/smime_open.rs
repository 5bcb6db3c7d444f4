#![no_main]
//! Opening received KOM-LE messages (gemSMIME_KOMLE): the MIME header parser, address
//! extraction and the CMS readers (SignedData, AuthEnvelopedData unauthAttrs, the
//! recipient-emails attribute) on arbitrary bytes; all of it is attacker-controlled mail.
#[path = "../drivers/smime_open.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
