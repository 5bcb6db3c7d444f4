//! Where the CPU-heavy steps of protecting and opening a message run: a pool of one thread per
//! core (rayon's global pool), separate from the `blocking` crate's pool that waits on the
//! Konnektor's HTTPS and the directory's LDAP.
//!
//! Why two pools: the `blocking` pool grows to a thread per waiting call (up to 500), which is
//! right for calls that mostly wait, but when the message steps ran there too, 100 concurrent
//! sessions meant 100 threads building and parsing messages on 2 cores, and throughput halved
//! (BENCHMARKS.md, issue 15: 259 msg/s with the pool unbounded, 501 msg/s bounded to 4). Here
//! at most one step per core computes at a time; the rest wait in the queue, not in the
//! scheduler.

/// Runs `f` on the CPU pool and returns its result. A panic in `f` is raised again in the
/// awaiting task, as `blocking::unblock` does, instead of taking the pool thread (and, with
/// rayon's default handler, the process) down.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = async_channel::bounded(1);
    rayon::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = done.send_blocking(outcome);
    });
    match result.recv().await {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // The job always sends; a closed channel means the pool dropped it unrun.
        Err(_) => std::panic::resume_unwind(Box::new("CPU pool dropped a job")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_off_the_calling_thread_and_returns_the_value() {
        let caller = std::thread::current().id();
        let (value, worker) =
            futures_lite::future::block_on(run(|| (6 * 7, std::thread::current().id())));
        assert_eq!(value, 42);
        assert_ne!(worker, caller);
    }

    #[test]
    fn a_panic_reaches_the_awaiting_task_and_the_pool_keeps_working() {
        let caught = std::panic::catch_unwind(|| {
            futures_lite::future::block_on(run(|| -> u8 { panic!("step failed") }))
        });
        assert!(caught.is_err());
        assert_eq!(futures_lite::future::block_on(run(|| 1 + 1)), 2);
    }
}
