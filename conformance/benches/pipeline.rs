//! Throughput (MB/s) of the core's send and receive pipelines (`protect::Protection`,
//! `open::Reception`: S/MIME plan plus SOAP build/parse) for 1 KB, 1 MB and 25 MB messages,
//! against a baseline of one memcpy + one base64 encode of the same bytes in the same run.
//!
//! WHY replay: the simulator's RSA/AES work is not the Clientmodul's cost, so each pipeline is
//! run once against `komle_conformance::sim` to record the directory and Konnektor answers, and
//! the timed passes replay those answers in order (copies made outside the timed part, as the
//! runtime would receive them from the socket). A counting global allocator reports peak heap
//! and full-size buffers (allocations at least as large as the message, with their sizes) for
//! one 25 MB pass, in which each Konnektor answer is allocated when it arrives and each request
//! is dropped before its answer, as in the daemon.
//!
//! Lives in `conformance/` because `komle-core` must not depend on the simulator.

use base64::Engine;
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use komle_conformance::inprocess;
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache, DirectoryEntry};
use komle_core::login_name::LoginName;
use komle_core::open::{self, Reception};
use komle_core::pop3::OpenJob;
use komle_core::protect::{self, Protection};
use komle_core::secret::SecretBytes;
use komle_core::smime::opened_mail::DeliveryOptions;
use komle_core::smtp::ProtectJob;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGE: AtomicUsize = AtomicUsize::new(0);
/// Allocations at least this large count as a full copy of the message under measurement.
static LARGE_BYTES: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sizes of the first full-size allocations of a measured pass, in order (0 = unused slot).
static LARGE_SIZES: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];

fn note_alloc(old: usize, new: usize) {
    let large = LARGE_BYTES.load(Ordering::Relaxed);
    if new >= large && old < large {
        let n = LARGE.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = LARGE_SIZES.get(n) {
            slot.store(new, Ordering::Relaxed);
        }
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        note_alloc(0, layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                - layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        note_alloc(layout.size(), new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One recorded answer, replayed in the order the pipeline asked.
#[derive(Clone)]
enum Answer {
    Directory(Vec<DirectoryEntry>),
    Konnektor(Vec<u8>),
}

fn cache() -> CertificateCache {
    CertificateCache::new(CacheConfig {
        lifetime: Duration::from_secs(600),
        capacity: NonZeroUsize::new(16).expect("non-zero"),
    })
}

fn mail(from: &str, to: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Praxis A <{from}>\r\nTo: <{to}>\r\nSubject: Befund\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <bench@komle.test>\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
    )
    .into_bytes();
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line);
    }
    m
}

struct Fixture {
    from: String,
    to: String,
    now: SystemTime,
    mail: Vec<u8>,
    outer: Vec<u8>,
    protect_answers: Vec<Answer>,
    open_answers: Vec<Answer>,
    opened_len: usize,
}

fn protect_job(f: &Fixture, message: Vec<u8>) -> ProtectJob {
    ProtectJob {
        login: LoginName::parse(&format!("{}#127.0.0.1:465#M1#CS1#WP1", f.from)).expect("login"),
        envelope_from: f.from.clone(),
        recipients: vec![f.to.clone()],
        message: SecretBytes::from(message),
    }
}

fn open_job(f: &Fixture, message: Vec<u8>) -> OpenJob {
    OpenJob {
        login: LoginName::parse(&format!("{}#127.0.0.1:995#M1#CS1#WP1", f.to)).expect("login"),
        message: SecretBytes::from(message),
    }
}

/// Runs protect against the simulator once, recording every answer.
fn record(world: &World, sim: &Simulator, size: usize, now: SystemTime) -> Fixture {
    let from = world.pki.sender.address.clone();
    let to = world.pki.single.address.clone();
    let mut f = Fixture {
        mail: mail(&from, &to, size),
        from,
        to,
        now,
        outer: Vec::new(),
        protect_answers: Vec::new(),
        open_answers: Vec::new(),
        opened_len: 0,
    };
    let endpoints = inprocess::endpoints(sim);
    let mut c = cache();
    let mut p = Protection::new(protect_job(&f, f.mail.clone()), endpoints.clone(), now);
    f.outer = loop {
        match p.step(&mut c) {
            protect::Step::LookUp(a) => {
                let e = world.directory_entries(&a);
                f.protect_answers.push(Answer::Directory(e.clone()));
                p.directory_answer(&mut c, Ok(e));
            }
            protect::Step::Call(call) => {
                let r = sim
                    .handle(call.request.soap_action, &call.request.body)
                    .body;
                f.protect_answers.push(Answer::Konnektor(r.clone()));
                p.konnektor_answer(&mut c, r);
            }
            protect::Step::Done(r) => break r.expect("protected").message.as_slice().to_vec(),
        }
    };
    let mut r = Reception::new(
        open_job(&f, f.outer.clone()),
        endpoints,
        now,
        DeliveryOptions::default(),
    );
    // A fresh card cache, as in open_replay: the recorded answers include ReadCardCertificate.
    let mut cards = open::CardCache::default();
    let opened = loop {
        match r.step() {
            open::Step::Call(call) => {
                let a = sim
                    .handle(call.request.soap_action, &call.request.body)
                    .body;
                f.open_answers.push(Answer::Konnektor(a.clone()));
                r.konnektor_answer(&mut cards, a);
            }
            // Only a pipeline made `with_kas` asks; this one is not.
            open::Step::FetchKas(_) => {
                r.kas_fetched(Err(komle_core::kas::KasOpenError::DownloadFailed))
            }
            open::Step::Done(result) => break result.expect("opened").message,
        }
    };
    let text = String::from_utf8_lossy(opened.as_slice());
    assert!(
        text.contains("X-KIM-IntegrityCheckResult: 01")
            || text.contains("X-KIM-DecryptionResult: 00"),
        "the recorded message opens"
    );
    f.opened_len = opened.len();
    f
}

/// Where the replayed answers come from. The timed passes get them copied outside the timed
/// part (`Owned`); the one measured 25 MB pass copies each answer only when the pipeline asks
/// for it (`Received`), because the runtime's HTTP client allocates the response body at that
/// moment too: the answer then counts towards that pass's peak heap and full-size buffers.
enum Answers<'a> {
    Owned(std::vec::IntoIter<Answer>),
    Received(std::slice::Iter<'a, Answer>),
}

impl Iterator for Answers<'_> {
    type Item = Answer;
    fn next(&mut self) -> Option<Answer> {
        match self {
            Answers::Owned(a) => a.next(),
            Answers::Received(a) => a.next().cloned(),
        }
    }
}

/// The send pipeline with recorded answers; returns the protected message's length.
fn protect_replay(f: &Fixture, job: ProtectJob, mut answers: Answers<'_>) -> usize {
    let mut c = cache();
    let mut p = Protection::new(job, endpoints(), f.now);
    loop {
        match p.step(&mut c) {
            protect::Step::LookUp(_) => match answers.next() {
                Some(Answer::Directory(e)) => p.directory_answer(&mut c, Ok(e)),
                _ => panic!("replay out of order"),
            },
            protect::Step::Call(call) => {
                // The runtime has sent (and dropped) the request before the answer arrives.
                drop(black_box(call));
                match answers.next() {
                    Some(Answer::Konnektor(a)) => p.konnektor_answer(&mut c, a),
                    _ => panic!("replay out of order"),
                }
            }
            protect::Step::Done(r) => return r.expect("protected").message.len(),
        }
    }
}

/// The receive pipeline with recorded answers; returns the opened message's length.
fn open_replay(f: &Fixture, job: OpenJob, mut answers: Answers<'_>) -> usize {
    let mut r = Reception::new(job, endpoints(), f.now, DeliveryOptions::default());
    let mut cards = open::CardCache::default();
    loop {
        match r.step() {
            open::Step::Call(call) => {
                drop(black_box(call));
                match answers.next() {
                    Some(Answer::Konnektor(a)) => r.konnektor_answer(&mut cards, a),
                    _ => panic!("replay out of order"),
                }
            }
            // Only a pipeline made `with_kas` asks; this one is not.
            open::Step::FetchKas(_) => {
                r.kas_fetched(Err(komle_core::kas::KasOpenError::DownloadFailed))
            }
            open::Step::Done(result) => return result.expect("opened").message.len(),
        }
    }
}

static ENDPOINTS: std::sync::OnceLock<komle_core::konnektor::KonnektorEndpoints> =
    std::sync::OnceLock::new();

fn endpoints() -> komle_core::konnektor::KonnektorEndpoints {
    ENDPOINTS.get().expect("set in bench()").clone()
}

fn baseline(mail: &[u8]) -> usize {
    let copy = mail.to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&copy);
    b64.len() + copy.len()
}

/// Runs `f` once and prints peak heap above the starting level and full-size allocations.
fn measure(what: &str, size: usize, f: impl FnOnce() -> usize) -> usize {
    LARGE_BYTES.store(size, Ordering::Relaxed);
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    LARGE.store(0, Ordering::Relaxed);
    for slot in &LARGE_SIZES {
        slot.store(0, Ordering::Relaxed);
    }
    let start = std::time::Instant::now();
    let out = f();
    let took = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    LARGE_BYTES.store(usize::MAX, Ordering::Relaxed);
    let sizes: Vec<String> = LARGE_SIZES
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|&s| s > 0)
        .map(|s| format!("{:.2}", s as f64 / size as f64))
        .collect();
    println!(
        "{what}: {:.1} ms, peak heap +{:.1} MB ({:.2}x message), allocations >= message size: {} (sizes in messages, in order: {})",
        took.as_secs_f64() * 1e3,
        peak as f64 / 1048576.0,
        peak as f64 / size as f64,
        LARGE.load(Ordering::Relaxed),
        sizes.join(" ")
    );
    out
}

fn bench(c: &mut Criterion) {
    let now = SystemTime::now();
    let world = World::generate(now).expect("world");
    let sim = Simulator::new(world.sim_config.clone());
    let _ = ENDPOINTS.set(inprocess::endpoints(&sim));
    for (name, size) in [("1kb", 1024), ("1mb", 1 << 20), ("25mb", 25 << 20)] {
        let f = record(&world, &sim, size, now);
        let sizes = |answers: &[Answer]| {
            answers
                .iter()
                .map(|a| match a {
                    Answer::Directory(_) => "LDAP".to_owned(),
                    Answer::Konnektor(k) => format!("{} B", k.len()),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{name}: mail {} B, outer {} B, opened {} B, protect answers [{}], open answers [{}]",
            f.mail.len(),
            f.outer.len(),
            f.opened_len,
            sizes(&f.protect_answers),
            sizes(&f.open_answers)
        );
        if size >= 25 << 20 {
            let job = protect_job(&f, f.mail.clone());
            let n = measure(
                "protect 25 MB (one pass, mail copied outside, answers received in the pass)",
                f.mail.len(),
                || protect_replay(&f, job, Answers::Received(f.protect_answers.iter())),
            );
            assert_eq!(n, f.outer.len());
            let job = open_job(&f, f.outer.clone());
            let n = measure(
                "open 25 MB (one pass, mail copied outside, answers received in the pass)",
                f.mail.len(),
                || open_replay(&f, job, Answers::Received(f.open_answers.iter())),
            );
            assert_eq!(n, f.opened_len);
            measure("baseline memcpy + base64 25 MB", f.mail.len(), || {
                baseline(&f.mail)
            });
        }
        let mut g = c.benchmark_group(format!("pipeline_{name}"));
        g.throughput(Throughput::Bytes(f.mail.len() as u64));
        if size >= 1 << 20 {
            g.sample_size(10);
        }
        g.bench_function("baseline_memcpy_base64", |b| {
            b.iter(|| baseline(black_box(&f.mail)))
        });
        g.bench_function("protect", |b| {
            b.iter_batched(
                || (protect_job(&f, f.mail.clone()), f.protect_answers.clone()),
                |(job, a)| protect_replay(&f, job, Answers::Owned(a.into_iter())),
                BatchSize::LargeInput,
            )
        });
        g.bench_function("open", |b| {
            b.iter_batched(
                || (open_job(&f, f.outer.clone()), f.open_answers.clone()),
                |(job, a)| open_replay(&f, job, Answers::Owned(a.into_iter())),
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
