//! What limits a listener, runtime-neutral: the overall and per-address session limits, the
//! handshake timeout and the shutdown grace ([`ServerLimits`]), the per-address slot accounting
//! ([`AddressSlots`]) and what a client over a limit is told. The smol listener and
//! komle-tokio's enforce the same limits with the same accounting (LIMITS.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The reply to clients over the session limit (RFC 5321 §3.8).
pub const SMTP_TOO_MANY_SESSIONS: &[u8] = b"421 4.3.2 Too many sessions, try again later\r\n";

/// The reply to clients over the session limit (RFC 3206 response code).
pub const POP3_TOO_MANY_SESSIONS: &[u8] = b"-ERR [SYS/TEMP] Too many sessions, try again later\r\n";

/// Limits of a listener.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_sessions: usize,
    /// Concurrent sessions from one client IP address; `None` is no limit of its own (the
    /// default: a practice behind one NAT router or terminal server shares one address).
    pub max_sessions_per_address: Option<usize>,
    /// Time for a client's TLS handshake.
    pub handshake_timeout: Duration,
    /// How long running sessions may continue after shutdown was requested.
    pub grace: Duration,
    /// Every connection starts with a PROXY protocol v2 header (`[smtp]`/`[pop3]`
    /// `proxy_protocol`): the client address is the header's, read before the TLS handshake
    /// and within `handshake_timeout`. False: no header is read or trusted.
    pub proxy_protocol: bool,
}

/// Sessions per client IP address, limited. A slot is an [`AddressSlot`] guard that gives the
/// count back when dropped — when the session ends, fails or its task is cancelled at shutdown
/// — so the accounting cannot leak. Shared by the smol listener and komle-tokio's.
#[derive(Debug, Clone)]
pub struct AddressSlots {
    limit: Option<usize>,
    counts: Counts,
}

/// Sessions per address; an address is removed when its count drops to zero.
type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One session's hold on its address's count; released on drop.
#[derive(Debug)]
pub struct AddressSlot {
    /// `None` when no per-address limit is configured: nothing to give back.
    held: Option<(IpAddr, Counts)>,
}

impl AddressSlots {
    pub fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            counts: Arc::default(),
        }
    }

    /// A slot for a session from `peer`, or `None` when that address already has `limit`
    /// sessions. IPv4-mapped IPv6 addresses count as the IPv4 address.
    pub fn try_acquire(&self, peer: IpAddr) -> Option<AddressSlot> {
        let Some(limit) = self.limit else {
            return Some(AddressSlot { held: None });
        };
        let ip = peer.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            held: Some((ip, self.counts.clone())),
        })
    }

    /// Sessions currently counted for `peer` (0 without a limit).
    pub fn count(&self, peer: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&peer.to_canonical()).copied().unwrap_or(0)
    }

    /// Addresses with at least one session: entries are removed at zero, so the table never
    /// grows beyond the sessions running.
    pub fn addresses(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((ip, counts)) = self.held.take() {
            let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_slots_count_per_address_and_give_back_on_drop() {
        let slots = AddressSlots::new(Some(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = slots.try_acquire(a).expect("first from a");
        let a2 = slots.try_acquire(a).expect("second from a");
        assert!(
            slots.try_acquire(a).is_none(),
            "third from a is over the limit"
        );
        // The IPv4-mapped IPv6 form of a is the same client.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(slots.try_acquire(mapped).is_none());
        // Another address has its own count.
        let b1 = slots.try_acquire(b).expect("b is independent");
        assert_eq!(
            (slots.count(a), slots.count(b), slots.addresses()),
            (2, 1, 2)
        );
        drop(a1);
        assert_eq!(slots.count(a), 1);
        let a3 = slots.try_acquire(a).expect("a slot came back");
        drop((a2, a3, b1));
        // Nothing is left: no count, no table entry.
        assert_eq!(
            (slots.count(a), slots.count(b), slots.addresses()),
            (0, 0, 0)
        );
    }

    #[test]
    fn address_slots_without_a_limit_admit_everyone_and_count_nothing() {
        let slots = AddressSlots::new(None);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..1000).map(|_| slots.try_acquire(a).unwrap()).collect();
        assert_eq!((slots.count(a), slots.addresses()), (0, 0));
        drop(held);
    }

    #[test]
    fn address_slot_is_released_when_its_task_is_cancelled() {
        let slots = AddressSlots::new(Some(1));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let slot = slots.try_acquire(a).unwrap();
        // A session task that never finishes, dropped (cancelled) as at shutdown.
        let task = smol::spawn(async move {
            let _slot = slot;
            std::future::pending::<()>().await;
        });
        assert!(slots.try_acquire(a).is_none());
        smol::block_on(task.cancel());
        assert!(slots.try_acquire(a).is_some());
    }
}
