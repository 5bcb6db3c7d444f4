//! A bound on the blocking calls one remote peer (a Konnektor, the directory) gets at a time.
//!
//! ureq and ldap3 are blocking, so each call occupies a thread of the `blocking` pool while it
//! waits. That pool grows to one thread per waiting call (up to 500): with 100 sessions sending
//! at once, 100 threads each held a Konnektor exchange and thrashed 2 cores (BENCHMARKS.md,
//! issue 15: bounding the pool to 4 threads nearly doubled throughput). Here a task first waits
//! for a permit *as a task* (no thread), then runs its call on the pool; at most `limit` calls
//! to the peer are in flight, which also keeps a Konnektor that serialises its card operations
//! from being flooded, and lets the HTTP client reuse at most `limit` kept-alive connections.

use std::sync::Arc;

use async_lock::Semaphore;

/// Cheap to clone; clones share the permits.
#[derive(Clone)]
pub struct CallLimit {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl std::fmt::Debug for CallLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLimit")
            .field("limit", &self.limit)
            .finish()
    }
}

impl CallLimit {
    /// At most `limit` calls at once (at least one).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        CallLimit {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// How many calls may run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Waits for a permit, then runs the blocking `call` on the `blocking` pool. The permit is
    /// held until the call returns, also when the awaiting task is dropped meanwhile (the
    /// thread still runs the call to its end).
    pub async fn run<T: Send + 'static>(&self, call: impl FnOnce() -> T + Send + 'static) -> T {
        let permit = self.permits.acquire_arc().await;
        blocking::unblock(move || {
            let result = call();
            drop(permit);
            result
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn never_more_calls_in_flight_than_the_limit() {
        let limit = CallLimit::new(3);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let (limit, in_flight, most) = (limit.clone(), in_flight.clone(), most.clone());
                std::thread::spawn(move || {
                    futures_lite::future::block_on(limit.run(move || {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    }))
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!((2..=3).contains(&most), "{most} calls at once");
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_zero_limit_still_lets_one_call_through() {
        let limit = CallLimit::new(0);
        assert_eq!(limit.limit(), 1);
        assert_eq!(futures_lite::future::block_on(limit.run(|| 7)), 7);
    }
}
