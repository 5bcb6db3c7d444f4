//! The PROXY protocol version 2 header (HAProxy's `send-proxy-v2`), sans-IO.
//!
//! gematik recommends running several Clientmodule behind a round-robin load balancer
//! (README.md, "Scale out"). A TCP load balancer hides the mail client's address: the
//! Clientmodul sees the balancer's. With `proxy_protocol = true` in `[smtp]` or `[pop3]` the
//! balancer prefixes every connection with this binary header naming the client's address, and
//! the listener logs and limits by that address instead.
//!
//! The header is only ever parsed on a listener where it is enabled: anyone who can reach a
//! listener could otherwise claim any address. The parser reads the fixed 16 bytes first and
//! then asks for exactly the rest ([`Parsed::Incomplete`]), so a caller never reads past the
//! header into the TLS handshake that follows. Only version 2 is accepted (not the text v1);
//! TLVs after the addresses are skipped; an address block longer than [`MAX_ADDRESS_BLOCK`] is
//! refused so a peer cannot make the listener buffer 64 KiB per connection.
//!
//! Reference: HAProxy's "The PROXY protocol, Versions 1 & 2" (proxy-protocol.txt), section 2.2.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every v2 header starts with.
pub const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// Signature, version/command, family/transport and the 2-byte length of the rest.
pub const FIXED_LEN: usize = 16;

/// The largest address block (addresses plus TLVs) accepted. UNIX addresses take 216 bytes;
/// HAProxy's optional TLVs (ALPN, authority, unique id, SSL) stay well below the rest.
pub const MAX_ADDRESS_BLOCK: usize = 1024;

/// What a complete header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// LOCAL: the balancer's own connection (a health check); use the connection's addresses.
    Local,
    /// PROXY over TCP4 or TCP6: the client's address and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// PROXY with an unspecified or UNIX family: relayed, but no IP address to report. The
    /// protocol says to use the connection's addresses.
    Unspecified,
}

impl ProxyHeader {
    /// The client address to log and limit by: the header's source, or `connection` (the
    /// TCP peer) when the header names none.
    pub fn client_address(&self, connection: SocketAddr) -> SocketAddr {
        match self {
            ProxyHeader::Proxied { source, .. } => *source,
            ProxyHeader::Local | ProxyHeader::Unspecified => connection,
        }
    }
}

/// The result of [`parse`] on the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// `total` bytes make the whole header; read up to that many, then parse again. Never more
    /// than [`FIXED_LEN`] + [`MAX_ADDRESS_BLOCK`].
    Incomplete { total: usize },
    /// The header, which took the first `consumed` bytes; what follows is the client's stream.
    Complete {
        header: ProxyHeader,
        consumed: usize,
    },
}

/// Why bytes are not a PROXY v2 header. The connection is closed: a balancer that is
/// configured for PROXY v2 never sends these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeaderError {
    /// The first bytes are not the v2 signature (no header, or a v1 text header).
    BadSignature,
    /// Version nibble other than 2.
    UnsupportedVersion(u8),
    /// Command nibble other than LOCAL (0) or PROXY (1).
    UnknownCommand(u8),
    /// Address family nibble above UNIX (3), or a transport other than UNSPEC/STREAM for an
    /// IP family (UDP is not relayed here).
    UnsupportedFamily(u8),
    /// The address block is shorter than its family's addresses.
    Truncated { family: u8, len: usize },
    /// The address block is longer than [`MAX_ADDRESS_BLOCK`].
    TooLong(usize),
}

impl fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyHeaderError::BadSignature => f.write_str("no PROXY protocol v2 signature"),
            ProxyHeaderError::UnsupportedVersion(v) => {
                write!(f, "PROXY protocol version {v} (only 2 is accepted)")
            }
            ProxyHeaderError::UnknownCommand(c) => write!(f, "unknown PROXY command {c}"),
            ProxyHeaderError::UnsupportedFamily(b) => {
                write!(f, "unsupported PROXY address family/transport 0x{b:02x}")
            }
            ProxyHeaderError::Truncated { family, len } => write!(
                f,
                "PROXY address block of {len} bytes too short for family 0x{family:02x}"
            ),
            ProxyHeaderError::TooLong(len) => write!(
                f,
                "PROXY address block of {len} bytes (at most {MAX_ADDRESS_BLOCK})"
            ),
        }
    }
}

impl std::error::Error for ProxyHeaderError {}

const COMMAND_LOCAL: u8 = 0;
const COMMAND_PROXY: u8 = 1;
const FAMILY_UNSPEC: u8 = 0;
const FAMILY_INET: u8 = 1;
const FAMILY_INET6: u8 = 2;
const FAMILY_UNIX: u8 = 3;
const TRANSPORT_UNSPEC: u8 = 0;
const TRANSPORT_STREAM: u8 = 1;

/// Parses the header at the start of `buf`. With fewer than [`FIXED_LEN`] bytes the bytes
/// present are checked against the signature (so a client speaking TLS directly is refused on
/// its first bytes) and `Incomplete { total: FIXED_LEN }` is returned.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let prefix = buf.len().min(SIGNATURE.len());
    if buf[..prefix] != SIGNATURE[..prefix] {
        return Err(ProxyHeaderError::BadSignature);
    }
    if buf.len() < FIXED_LEN {
        return Ok(Parsed::Incomplete { total: FIXED_LEN });
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0F;
    if version != 2 {
        return Err(ProxyHeaderError::UnsupportedVersion(version));
    }
    if command != COMMAND_LOCAL && command != COMMAND_PROXY {
        return Err(ProxyHeaderError::UnknownCommand(command));
    }
    let family_byte = buf[13];
    let (family, transport) = (family_byte >> 4, family_byte & 0x0F);
    if family > FAMILY_UNIX || transport > 2 {
        return Err(ProxyHeaderError::UnsupportedFamily(family_byte));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_ADDRESS_BLOCK {
        return Err(ProxyHeaderError::TooLong(len));
    }
    let total = FIXED_LEN + len;
    if buf.len() < total {
        return Ok(Parsed::Incomplete { total });
    }
    let block = &buf[FIXED_LEN..total];
    let header = if command == COMMAND_LOCAL {
        // LOCAL: the receiver must ignore the address block whatever it holds.
        ProxyHeader::Local
    } else {
        match family {
            FAMILY_INET | FAMILY_INET6 => {
                if transport != TRANSPORT_STREAM && transport != TRANSPORT_UNSPEC {
                    return Err(ProxyHeaderError::UnsupportedFamily(family_byte));
                }
                addresses(family, block).ok_or(ProxyHeaderError::Truncated {
                    family: family_byte,
                    len,
                })?
            }
            FAMILY_UNSPEC | FAMILY_UNIX => ProxyHeader::Unspecified,
            _ => return Err(ProxyHeaderError::UnsupportedFamily(family_byte)),
        }
    };
    Ok(Parsed::Complete {
        header,
        consumed: total,
    })
}

/// Source and destination of a TCP4 (12 bytes) or TCP6 (36 bytes) address block; the rest of
/// the block (TLVs) is not needed.
fn addresses(family: u8, block: &[u8]) -> Option<ProxyHeader> {
    let ip_len = if family == FAMILY_INET { 4 } else { 16 };
    let block = block.get(..2 * ip_len + 4)?;
    let ip = |bytes: &[u8]| -> Option<IpAddr> {
        Some(if ip_len == 4 {
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))
        } else {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?))
        })
    };
    let source = ip(&block[..ip_len])?;
    let destination = ip(&block[ip_len..2 * ip_len])?;
    let ports = &block[2 * ip_len..];
    Some(ProxyHeader::Proxied {
        source: SocketAddr::new(source, u16::from_be_bytes([ports[0], ports[1]])),
        destination: SocketAddr::new(destination, u16::from_be_bytes([ports[2], ports[3]])),
    })
}

/// Encodes a PROXY (command 1) header for a TCP connection from `source` to `destination`,
/// as a balancer would: for tests and for test clients. Mixed families are sent as TCP6 with
/// IPv4-mapped addresses.
pub fn encode(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x20 | COMMAND_PROXY);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push((FAMILY_INET << 4) | TRANSPORT_STREAM);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push((FAMILY_INET6 << 4) | TRANSPORT_STREAM);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// A LOCAL header (a balancer's health check), without addresses.
pub fn encode_local() -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[0x20 | COMMAND_LOCAL, 0x00, 0x00, 0x00]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tcp4_header_names_the_client() {
        let mut bytes = encode(addr("192.0.2.7:50123"), addr("10.0.0.1:465"));
        bytes.extend_from_slice(b"\x16\x03\x01"); // the TLS ClientHello that follows
        assert_eq!(
            parse(&bytes),
            Ok(Parsed::Complete {
                header: ProxyHeader::Proxied {
                    source: addr("192.0.2.7:50123"),
                    destination: addr("10.0.0.1:465"),
                },
                consumed: 28,
            })
        );
    }

    #[test]
    fn tcp6_header_names_the_client() {
        let bytes = encode(addr("[2001:db8::7]:50123"), addr("[2001:db8::1]:995"));
        assert_eq!(bytes.len(), 52);
        let Ok(Parsed::Complete { header, consumed }) = parse(&bytes) else {
            panic!("not parsed");
        };
        assert_eq!(consumed, 52);
        assert_eq!(
            header.client_address(addr("127.0.0.1:1")),
            addr("[2001:db8::7]:50123")
        );
    }

    #[test]
    fn local_header_keeps_the_connection_address() {
        let Ok(Parsed::Complete { header, consumed }) = parse(&encode_local()) else {
            panic!("not parsed");
        };
        assert_eq!((header, consumed), (ProxyHeader::Local, 16));
        assert_eq!(
            header.client_address(addr("127.0.0.1:4000")),
            addr("127.0.0.1:4000")
        );
    }

    #[test]
    fn asks_for_exactly_the_rest_and_never_more() {
        let bytes = encode(addr("192.0.2.7:1"), addr("192.0.2.8:2"));
        assert_eq!(parse(&bytes[..5]), Ok(Parsed::Incomplete { total: 16 }));
        assert_eq!(parse(&bytes[..16]), Ok(Parsed::Incomplete { total: 28 }));
        assert_eq!(parse(&bytes[..27]), Ok(Parsed::Incomplete { total: 28 }));
    }

    #[test]
    fn tls_or_v1_without_header_is_refused_on_the_first_byte() {
        assert_eq!(parse(b"\x16"), Err(ProxyHeaderError::BadSignature));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyHeaderError::BadSignature)
        );
    }

    #[test]
    fn bad_version_command_family_length_are_errors() {
        let good = encode(addr("192.0.2.7:1"), addr("192.0.2.8:2"));
        let with = |i: usize, b: u8| {
            let mut v = good.clone();
            v[i] = b;
            parse(&v)
        };
        assert_eq!(with(12, 0x11), Err(ProxyHeaderError::UnsupportedVersion(1)));
        assert_eq!(with(12, 0x22), Err(ProxyHeaderError::UnknownCommand(2)));
        assert_eq!(
            with(13, 0x41),
            Err(ProxyHeaderError::UnsupportedFamily(0x41))
        );
        assert_eq!(
            with(13, 0x12),
            Err(ProxyHeaderError::UnsupportedFamily(0x12))
        );
        // TCP4 with an 8-byte block: too short for two addresses and ports.
        let mut short = good[..16].to_vec();
        short[15] = 8;
        short.extend_from_slice(&[0; 8]);
        assert_eq!(
            parse(&short),
            Err(ProxyHeaderError::Truncated {
                family: 0x11,
                len: 8
            })
        );
        let mut long = good[..16].to_vec();
        long[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(parse(&long), Err(ProxyHeaderError::TooLong(2000)));
    }

    #[test]
    fn tlvs_after_the_addresses_are_skipped() {
        let mut bytes = encode(addr("192.0.2.7:1"), addr("192.0.2.8:2"));
        let tlv = [0x04, 0x00, 0x02, 0xAA, 0xBB]; // PP2_TYPE_NOOP, 2 bytes
        bytes[15] += tlv.len() as u8;
        bytes.extend_from_slice(&tlv);
        let Ok(Parsed::Complete { header, consumed }) = parse(&bytes) else {
            panic!("not parsed");
        };
        assert_eq!(consumed, bytes.len());
        assert_eq!(
            header.client_address(addr("127.0.0.1:1")),
            addr("192.0.2.7:1")
        );
    }

    #[test]
    fn unix_family_is_relayed_without_address() {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x21, 0x31]);
        bytes.extend_from_slice(&216u16.to_be_bytes());
        bytes.extend_from_slice(&[0; 216]);
        assert_eq!(
            parse(&bytes),
            Ok(Parsed::Complete {
                header: ProxyHeader::Unspecified,
                consumed: 232
            })
        );
    }
}
