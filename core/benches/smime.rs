//! CPU time, full copies and peak heap of protecting and opening a 25 MB message, against a
//! baseline of one memcpy + one base64 encode of the same 25 MB in the same run.
//!
//! Konnektor answers are precomputed with the right sizes (SignedData around the real sign
//! input, AuthEnvelopedData around the signed entity) so only the Clientmodul's work is timed.
//! A counting global allocator reports peak heap and "full copies" (allocations of at least
//! 20 MB, i.e. buffers holding the whole message) for one run of each path.

use base64::Engine;
use criterion::{Criterion, criterion_group};
use komle_core::smime::{
    Decrypted, DeliveryOptions, Lookup, Prepared, Retrieved, SendPlan, SendStart, Verification,
    VerifyResult, on_retrieve, recipient_emails, wrap_signed,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGE: AtomicUsize = AtomicUsize::new(0);
const LARGE_BYTES: usize = 20 * 1024 * 1024;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        if layout.size() >= LARGE_BYTES {
            LARGE.fetch_add(1, Ordering::Relaxed);
        }
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
        if new_size >= LARGE_BYTES && layout.size() < LARGE_BYTES {
            LARGE.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SIZE: usize = 25 * 1024 * 1024;
const DIR: &str = "/work/shared/spec/samples/smime-profil";

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn cert(path: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(format!("{DIR}/{path}")).expect("sample cert");
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("pem")
}

/// A 25 MB mail: sample headers, a text body of 76-column lines.
fn mail() -> Vec<u8> {
    let mut m = b"MIME-Version: 1.0\r\nFrom: Karl Mustersender <mustersender@komle.de>\r\nReply-To: Karl Mustersender <mustersender@komle.de>\r\nTo: Steffi Musterempfaenger <musterempfaenger@komle.de>\r\nSubject: Befund\r\nDate: Wed, 20 Jun 2020 12:58:26 +0200\r\nMessage-ID: <bench@komle.de>\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n".to_vec();
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n";
    while m.len() + line.len() <= SIZE {
        m.extend_from_slice(line);
    }
    m
}

const OID_SIGNED: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
const OID_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];
const OID_AUTH_ENV: &[u8] = &[
    0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];

/// SignedData as SignDocument returns it: content, signer certificate, one signerInfo with the
/// recipient-emails attribute and a 256-byte signature.
fn signed_data(content: &[u8], cert: &[u8], attr: &[u8]) -> Vec<u8> {
    let encap = tlv(0x30, &cat(&[OID_DATA, &tlv(0xa0, &tlv(0x04, content))]));
    let signer = tlv(
        0x30,
        &cat(&[
            &[0x02, 0x01, 0x01],
            &tlv(0xa0, attr),
            &tlv(0x04, &[0x55; 256]),
        ]),
    );
    let sd = tlv(
        0x30,
        &cat(&[
            &[0x02, 0x01, 0x01],
            &[0x31, 0x00],
            &encap,
            &tlv(0xa0, cert),
            &tlv(0x31, &signer),
        ]),
    );
    tlv(0x30, &cat(&[OID_SIGNED, &tlv(0xa0, &sd)]))
}

/// AuthEnvelopedData as EncryptDocument returns it: the ciphertext as large as the plaintext,
/// a MAC and the unprotected recipient-emails.
fn auth_enveloped(plain_len: usize, attr: &[u8]) -> Vec<u8> {
    let eci = tlv(
        0x30,
        &cat(&[OID_DATA, &[0x30, 0x00], &tlv(0x80, &vec![0xa5; plain_len])]),
    );
    let aed = tlv(
        0x30,
        &cat(&[
            &[0x02, 0x01, 0x00],
            &[0x31, 0x00],
            &eci,
            &tlv(0x04, &[0x11; 16]),
            &tlv(0xa2, attr),
        ]),
    );
    tlv(0x30, &cat(&[OID_AUTH_ENV, &tlv(0xa0, &aed)]))
}

struct Fixture {
    mail: Vec<u8>,
    lookups: Vec<(String, Lookup)>,
    signed: Vec<u8>,
    encrypted: Vec<u8>,
    outer: Vec<u8>,
    plaintext: Vec<u8>,
}

fn fixture() -> Fixture {
    let a = cert("recipientA/hci-enc-2-kim-bsp.pem");
    let b = cert("recipientB/hci-enc-3-kim-bsp.pem");
    let mail = mail();
    let lookups = vec![
        (
            "musterempfaenger@komle.de".to_owned(),
            Lookup::Found(vec![b.clone()]),
        ),
        (
            "mustersender@komle.de".to_owned(),
            Lookup::Found(vec![a.clone()]),
        ),
    ];
    let attr = recipient_emails::build(&[
        ("musterempfaenger@komle.de", &b),
        ("mustersender@komle.de", &a),
    ])
    .expect("attribute");
    let sign_input = komle_core::smime::wrap_for_signing(&mail).expect("wrap");
    let signed = signed_data(&sign_input, &a, &attr);
    let plaintext = wrap_signed(&signed);
    let encrypted = auth_enveloped(plaintext.len(), &attr);
    let outer = komle_core::smime::build_outer(&mail, &encrypted).expect("outer");
    Fixture {
        mail,
        lookups,
        signed,
        encrypted,
        outer,
        plaintext,
    }
}

fn protect(f: &Fixture, mail: Vec<u8>) -> Vec<u8> {
    let SendStart::Protect(plan) =
        SendPlan::start(mail, &["musterempfaenger@komle.de".to_owned()]).expect("start")
    else {
        panic!("bench mail must be protected")
    };
    let Prepared::Protect(p) = plan.with_certificates(&f.lookups, 0).expect("prepared") else {
        panic!("bench mail has certificates")
    };
    black_box(p.sign_input_parts(&plan));
    let entity = p.encrypt_input(&f.signed);
    black_box(&entity);
    drop(entity);
    p.finish(&f.encrypted).expect("outer")
}

fn open(f: &Fixture, plaintext: Vec<u8>) -> Vec<u8> {
    let Retrieved::Decrypt(o) = on_retrieve(&f.outer, 0) else {
        panic!("bench message must be decrypted")
    };
    let Decrypted::Verify(v) = o.decrypted(plaintext, 0, DeliveryOptions::default()) else {
        panic!("bench plaintext is signed data")
    };
    black_box(v.verify_input());
    let verification = Verification {
        result: VerifyResult::Valid,
        signer_name: "Asclepios Apotheke".into(),
        telematik_id: Some("3-SMC-B-Testkarte-883110000116873".into()),
        signing_time: None,
        error_code: None,
        error_text: None,
        signature_broken: false,
        path_invalid: false,
        no_verdict: None,
    };
    v.finish(&verification, 0, DeliveryOptions::default())
}

fn baseline(mail: &[u8]) -> usize {
    let copy = mail.to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&copy);
    b64.len() + copy.len()
}

/// Runs `f` once and reports peak heap above the starting level and full-size allocations.
fn measure<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    LARGE.store(0, Ordering::Relaxed);
    let start = std::time::Instant::now();
    let out = f();
    let took = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    println!(
        "{what}: {:.1} ms, peak heap +{:.1} MB, allocations >= 20 MB: {}",
        took.as_secs_f64() * 1e3,
        peak as f64 / 1048576.0,
        LARGE.load(Ordering::Relaxed)
    );
    out
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    println!(
        "mail {} B, signed {} B, encrypted {} B, outer {} B",
        f.mail.len(),
        f.signed.len(),
        f.encrypted.len(),
        f.outer.len()
    );
    let out = measure("protect (one run, mail copy made outside)", {
        let m = f.mail.clone();
        || protect(&f, m)
    });
    assert_eq!(out.len(), f.outer.len());
    drop(out);
    let opened = measure("open (one run, plaintext copy made outside)", {
        let p = f.plaintext.clone();
        || open(&f, p)
    });
    assert!(opened.len() > f.mail.len());
    drop(opened);
    measure("baseline memcpy + base64", || baseline(&f.mail));

    let mut g = c.benchmark_group("smime_25mb");
    g.sample_size(10);
    g.bench_function("baseline_memcpy_base64", |b| {
        b.iter(|| baseline(black_box(&f.mail)))
    });
    g.bench_function("protect", |b| {
        b.iter_batched(
            || f.mail.clone(),
            |m| protect(&f, m),
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("open", |b| {
        b.iter_batched(
            || f.plaintext.clone(),
            |p| open(&f, p),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
