//! The SNTP exchange with the Konnektor (KOM-LE-A_2230): one request over UDP, the answer
//! checked by [`crate::time_sync::evaluate`], the offset stored in the shared [`Clock`].
//! Runtime-neutral: one datagram an hour does not need an executor's socket, so the exchange is
//! a blocking `std` UDP socket with a read timeout on the `blocking` pool, usable from smol and
//! tokio alike. Packet format, offset formula and the clock are in [`crate::time_sync`].

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use crate::time_sync::{Clock, NtpError, NtpSample, evaluate, request};

/// Asks `server` once (UDP) and returns the sample, within `timeout`.
pub async fn query(server: SocketAddr, timeout: Duration) -> Result<NtpSample, NtpError> {
    blocking::unblock(move || query_blocking(server, timeout)).await
}

fn query_blocking(server: SocketAddr, timeout: Duration) -> Result<NtpSample, NtpError> {
    let io = |e: std::io::Error| NtpError::Io(e.to_string());
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(server).map_err(io)?;
    let deadline = Instant::now() + timeout;
    let t0 = SystemTime::now();
    socket.send(&request(t0)).map_err(io)?;
    let mut buf = [0u8; 512];
    // Ignore stray datagrams that do not answer our request; keep waiting until the deadline.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NtpError::Timeout);
        }
        socket.set_read_timeout(Some(left)).map_err(io)?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(NtpError::Timeout);
            }
            Err(e) => return Err(io(e)),
        };
        let t3 = SystemTime::now();
        match evaluate(&buf[..n], t0, t3) {
            Err(NtpError::BadResponse("origin timestamp does not match request")) => continue,
            other => return other,
        }
    }
}

/// Measures once and stores the offset in `clock` (A_2230).
pub async fn sync(
    clock: &Clock,
    server: SocketAddr,
    timeout: Duration,
) -> Result<NtpSample, NtpError> {
    let sample = query(server, timeout).await?;
    clock.set_offset_nanos(sample.offset_nanos);
    log::info!(
        "time sync: offset {} ms, delay {} ms",
        sample.offset_nanos / 1_000_000,
        sample.delay_nanos / 1_000_000
    );
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time_sync::to_ntp;
    use std::net::UdpSocket;

    /// A one-shot NTP responder whose clock runs `skew` ahead; `mangle` may spoil the reply.
    fn responder(
        skew: Duration,
        mangle: fn(&mut [u8; 48]),
    ) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 48];
            let (n, peer) = socket.recv_from(&mut buf).unwrap();
            assert_eq!(n, 48);
            assert_eq!(buf[0], 0x23, "LI 0, VN 4, mode 3");
            let server_now = || to_ntp(SystemTime::now() + skew);
            let mut reply = [0u8; 48];
            reply[0] = 0b00_100_100;
            reply[1] = 2;
            reply[24..32].copy_from_slice(&buf[40..48]);
            reply[32..40].copy_from_slice(&server_now().to_be_bytes());
            reply[40..48].copy_from_slice(&server_now().to_be_bytes());
            mangle(&mut reply);
            socket.send_to(&reply, peer).unwrap();
        });
        (addr, handle)
    }

    #[test]
    fn a_2230_offset_of_a_skewed_server_is_measured_and_applied() {
        let skew = Duration::from_secs(1000);
        let (addr, h) = responder(skew, |_| {});
        let clock = Clock::new();
        assert!(!clock.is_synced());
        let sample =
            futures_lite::future::block_on(sync(&clock, addr, Duration::from_secs(5))).unwrap();
        h.join().unwrap();
        let err = (sample.offset_nanos - 1_000_000_000_000).abs();
        assert!(
            err < 50_000_000,
            "offset {} ns off by {err}",
            sample.offset_nanos
        );
        assert!(clock.is_synced());
        let wall_diff = clock
            .wall()
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs_f64();
        assert!((wall_diff - 1000.0).abs() < 0.1, "{wall_diff}");
    }

    #[test]
    fn a_2230_unsynchronised_server_does_not_change_the_clock() {
        let (addr, h) = responder(Duration::from_secs(50), |r| r[0] |= 0b11_000_000);
        let clock = Clock::new();
        let e =
            futures_lite::future::block_on(sync(&clock, addr, Duration::from_secs(5))).unwrap_err();
        h.join().unwrap();
        assert_eq!(e, NtpError::BadResponse("server clock not synchronised"));
        assert_eq!(clock.offset_nanos(), 0);
        assert!(!clock.is_synced());
    }

    #[test]
    fn silent_server_times_out() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let e =
            futures_lite::future::block_on(query(addr, Duration::from_millis(200))).unwrap_err();
        assert_eq!(e, NtpError::Timeout);
        drop(socket);
    }
}
