//! Time synchronisation with the Konnektor (KOM-LE-A_2230, `sync_Time`): plain SNTP / NTPv4
//! over UDP.
//!
//! Timers in `komle-core` run on the monotonic `Instant`, which needs no synchronisation. What
//! needs the Konnektor's time is the wall clock used to judge certificate validity and to write
//! `Date`-like values: [`Clock::wall`] is the local `SystemTime` corrected by the offset measured
//! here, so a skewed host clock cannot make a valid certificate look expired (or the reverse).
//!
//! Offset per RFC 4330: `((t1 - t0) + (t2 - t3)) / 2` with t0 = our send time, t1 = server
//! receive, t2 = server transmit, t3 = our receive.
//!
//! The exchange over a UDP socket is the runtime's (`komle-smol`'s `ntp`): this module is the
//! packet, its checks and the [`Clock`], shared by every runtime.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_DELTA: u64 = 2_208_988_800;
/// Size of an NTP packet without extensions.
pub const PACKET_LEN: usize = 48;

/// The daemon's notion of time: monotonic `Instant` for core, Konnektor-corrected wall time for
/// validity checks. Shared between tasks; the offset is updated atomically.
#[derive(Debug, Default)]
pub struct Clock {
    offset_nanos: AtomicI64,
    synced: std::sync::atomic::AtomicBool,
}

impl Clock {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `now` handed to the core's state machines.
    pub fn instant(&self) -> Instant {
        Instant::now()
    }

    /// Local wall time corrected by the last measured offset.
    pub fn wall(&self) -> SystemTime {
        apply_offset(SystemTime::now(), self.offset_nanos())
    }

    /// Konnektor time minus local time, in nanoseconds.
    pub fn offset_nanos(&self) -> i64 {
        self.offset_nanos.load(Ordering::Relaxed)
    }

    /// Whether at least one sync succeeded.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    pub fn set_offset_nanos(&self, offset: i64) {
        self.offset_nanos.store(offset, Ordering::Relaxed);
        self.synced.store(true, Ordering::Relaxed);
    }
}

fn apply_offset(t: SystemTime, offset_nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(offset_nanos.unsigned_abs());
    if offset_nanos >= 0 {
        t.checked_add(magnitude).unwrap_or(t)
    } else {
        t.checked_sub(magnitude).unwrap_or(t)
    }
}

/// Why a time sync failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtpError {
    Timeout,
    Io(String),
    /// The answer is not a usable server reply (wrong size, mode, origin, kiss-o'-death, ...).
    BadResponse(&'static str),
}

impl fmt::Display for NtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NtpError::Timeout => f.write_str("NTP: no answer in time"),
            NtpError::Io(e) => write!(f, "NTP: {e}"),
            NtpError::BadResponse(why) => write!(f, "NTP: unusable answer: {why}"),
        }
    }
}

impl std::error::Error for NtpError {}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpSample {
    /// Server time minus local time.
    pub offset_nanos: i64,
    /// Round trip minus server processing time.
    pub delay_nanos: i64,
}

/// NTP 32.32 fixed-point timestamp of a wall time.
pub fn to_ntp(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs().wrapping_add(NTP_UNIX_DELTA) & 0xFFFF_FFFF;
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Nanoseconds since the Unix epoch of an NTP timestamp (era 0, i.e. until 2036).
fn ntp_to_unix_nanos(ts: u64) -> i128 {
    let secs = i128::from(ts >> 32) - i128::from(NTP_UNIX_DELTA);
    let frac = ((i128::from(ts & 0xFFFF_FFFF)) * 1_000_000_000) >> 32;
    secs * 1_000_000_000 + frac
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// A client request (LI 0, VN 4, mode 3) carrying `t0` as transmit timestamp.
pub fn request(t0: SystemTime) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = 0b00_100_011;
    p[40..48].copy_from_slice(&to_ntp(t0).to_be_bytes());
    p
}

fn read_u64(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Checks a server reply to [`request`]`(t0)` received at `t3` and computes the sample.
pub fn evaluate(reply: &[u8], t0: SystemTime, t3: SystemTime) -> Result<NtpSample, NtpError> {
    if reply.len() < PACKET_LEN {
        return Err(NtpError::BadResponse("shorter than 48 bytes"));
    }
    let leap = reply[0] >> 6;
    let version = (reply[0] >> 3) & 0b111;
    let mode = reply[0] & 0b111;
    if mode != 4 {
        return Err(NtpError::BadResponse("not a server reply (mode 4)"));
    }
    if !(3..=4).contains(&version) {
        return Err(NtpError::BadResponse("unsupported NTP version"));
    }
    if leap == 3 {
        return Err(NtpError::BadResponse("server clock not synchronised"));
    }
    if reply[1] == 0 {
        return Err(NtpError::BadResponse("kiss-o'-death (stratum 0)"));
    }
    // The origin timestamp must echo our transmit timestamp: ties the answer to our request.
    if read_u64(reply, 24) != to_ntp(t0) {
        return Err(NtpError::BadResponse(
            "origin timestamp does not match request",
        ));
    }
    let t1 = read_u64(reply, 32);
    let t2 = read_u64(reply, 40);
    if t1 == 0 || t2 == 0 {
        return Err(NtpError::BadResponse("zero timestamps"));
    }
    let (t0, t1, t2, t3) = (
        unix_nanos(t0),
        ntp_to_unix_nanos(t1),
        ntp_to_unix_nanos(t2),
        unix_nanos(t3),
    );
    let offset = ((t1 - t0) + (t2 - t3)) / 2;
    let delay = (t3 - t0) - (t2 - t1);
    Ok(NtpSample {
        offset_nanos: i64::try_from(offset)
            .map_err(|_| NtpError::BadResponse("offset out of range"))?,
        delay_nanos: i64::try_from(delay).unwrap_or(i64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2230_negative_offset() {
        let clock = Clock::new();
        clock.set_offset_nanos(-5_000_000_000);
        let behind = SystemTime::now().duration_since(clock.wall()).unwrap();
        assert!((behind.as_secs_f64() - 5.0).abs() < 0.1);
    }

    #[test]
    fn offset_formula_on_fixed_timestamps() {
        // t0 = 100 s, server 7 s ahead, 1 s each way, 0.5 s processing.
        let at = |s: f64| UNIX_EPOCH + Duration::from_secs_f64(s);
        let t0 = at(100.0);
        let mut reply = [0u8; 48];
        reply[0] = 0b00_100_100;
        reply[1] = 1;
        reply[24..32].copy_from_slice(&to_ntp(t0).to_be_bytes());
        reply[32..40].copy_from_slice(&to_ntp(at(108.0)).to_be_bytes());
        reply[40..48].copy_from_slice(&to_ntp(at(108.5)).to_be_bytes());
        let s = evaluate(&reply, t0, at(102.5)).unwrap();
        assert!((s.offset_nanos - 7_000_000_000).abs() < 10, "{s:?}");
        assert!((s.delay_nanos - 2_000_000_000).abs() < 10, "{s:?}");
    }

    #[test]
    fn spoofed_or_broken_replies_are_rejected() {
        let t0 = SystemTime::now();
        let good = {
            let mut r = [0u8; 48];
            r[0] = 0b00_100_100;
            r[1] = 2;
            r[24..32].copy_from_slice(&to_ntp(t0).to_be_bytes());
            r[32..40].copy_from_slice(&to_ntp(t0).to_be_bytes());
            r[40..48].copy_from_slice(&to_ntp(t0).to_be_bytes());
            r
        };
        assert!(evaluate(&good, t0, t0).is_ok());
        type Mangle = fn(&mut [u8; 48]);
        let cases: [(Mangle, &str); 5] = [
            (|r| r[0] = 0b00_100_011, "mode"),
            (|r| r[0] = 0b11_100_100, "not synchronised"),
            (|r| r[1] = 0, "kiss"),
            (|r| r[24] ^= 1, "origin"),
            (|r| r[40..48].fill(0), "zero"),
        ];
        for (mangle, expect) in cases {
            let mut r = good;
            mangle(&mut r);
            let e = evaluate(&r, t0, t0).unwrap_err().to_string();
            assert!(e.contains(expect), "{e} lacks {expect}");
        }
        assert!(evaluate(&good[..47], t0, t0).is_err());
    }
}
