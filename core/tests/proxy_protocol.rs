//! The PROXY protocol v2 parser on hostile input: whatever a peer sends before the TLS
//! handshake, the parser answers without panicking, never asks for more than the bound, and
//! agrees with itself when the bytes arrive in pieces.

use std::net::{IpAddr, SocketAddr};

use komle_core::proxy_protocol::{
    FIXED_LEN, MAX_ADDRESS_BLOCK, Parsed, ProxyHeader, SIGNATURE, encode, parse,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        match parse(&bytes) {
            Ok(Parsed::Incomplete { total }) => {
                prop_assert!(total > bytes.len());
                prop_assert!(total <= FIXED_LEN + MAX_ADDRESS_BLOCK);
            }
            Ok(Parsed::Complete { consumed, .. }) => prop_assert!(consumed <= bytes.len()),
            Err(_) => {}
        }
    }

    /// Past the signature the bytes are arbitrary: the interesting branches (version, family,
    /// length, addresses) are reached, which random bytes alone almost never do.
    #[test]
    fn arbitrary_bytes_after_the_signature_never_panic(rest in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&rest);
        if let Ok(Parsed::Complete { consumed, .. }) = parse(&bytes) {
            prop_assert!(consumed <= bytes.len());
        }
    }

    /// Encoded headers parse back to their addresses, also when fed prefix by prefix as a
    /// listener reads them (Incomplete until exactly the header is there).
    #[test]
    fn encoded_headers_round_trip(src in any::<(IpAddr, u16)>(), dst in any::<(IpAddr, u16)>()) {
        let (source, destination) = (SocketAddr::from(src), SocketAddr::from(dst));
        let bytes = encode(source, destination);
        for cut in 0..bytes.len() {
            let incomplete = matches!(parse(&bytes[..cut]), Ok(Parsed::Incomplete { .. }));
            prop_assert!(incomplete, "prefix of {} bytes", cut);
        }
        let Ok(Parsed::Complete { header, consumed }) = parse(&bytes) else {
            return Err(TestCaseError::fail("not parsed"));
        };
        prop_assert_eq!(consumed, bytes.len());
        let ProxyHeader::Proxied { source: s, destination: d } = header else {
            return Err(TestCaseError::fail("not proxied"));
        };
        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        if source.is_ipv4() == destination.is_ipv4() {
            prop_assert_eq!((s, d), (source, destination));
        } else {
            prop_assert_eq!((canonical(s), canonical(d)), (canonical(source), canonical(destination)));
        }
    }
}
