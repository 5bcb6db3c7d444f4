//! SOAP cost of a 25 MB KOM-LE message, against plain base64 of the same bytes.
//!
//! Measures (criterion): building a SignDocument request and parsing a SignDocument response
//! carrying the 25 MB document, next to `base64` encode/decode of the same 25 MB in the same run.
//! Also prints, outside criterion, the median time ratios and the peak heap use of each step
//! (counting global allocator) relative to the document size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use komle_core::konnektor::service_directory::SignatureServiceVersion;
use komle_core::konnektor::{CallContext, sign_document};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                note_alloc(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DOC_SIZE: usize = 25 * 1024 * 1024;

fn document() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..DOC_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn context() -> CallContext {
    CallContext {
        mandant_id: "Praxis".into(),
        client_system_id: "KIM".into(),
        workplace_id: "WP1".into(),
        user_id: None,
    }
}

fn build(ctx: &CallContext, doc: &[u8]) -> Vec<u8> {
    sign_document::build(&sign_document::SignDocumentRequest {
        version: SignatureServiceVersion::V7_5,
        context: ctx,
        card_handle: "SMB-1",
        job_number: "ABC-123",
        request_id: "KIM-1",
        recipient_emails_attribute: &[0x30; 120],
        document: &[doc],
    })
    .body
}

/// A SignDocumentResponse carrying `signed`; `wrap` breaks the base64 into 76-column CRLF lines.
fn response(signed: &[u8], wrap: bool) -> Vec<u8> {
    let b64 = STANDARD.encode(signed);
    let b64 = if wrap {
        b64.as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\r\n")
    } else {
        b64
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>\
<ns3:SignDocumentResponse xmlns:ns3=\"http://ws.gematik.de/conn/SignatureService/v7.5\" \
xmlns:ns2=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" xmlns:ns4=\"urn:oasis:names:tc:dss:1.0:core:schema\">\
<ns3:SignResponse RequestID=\"KIM-1\"><ns2:Status><ns2:Result>OK</ns2:Result></ns2:Status>\
<ns4:SignatureObject><ns4:Base64Signature Type=\"urn:ietf:rfc:5652\">{b64}</ns4:Base64Signature></ns4:SignatureObject>\
</ns3:SignResponse></ns3:SignDocumentResponse></S:Body></S:Envelope>"
    )
    .into_bytes()
}

fn parse(resp: &[u8]) -> Vec<u8> {
    match sign_document::parse(resp) {
        Ok(r) => r.signed_data,
        Err(e) => panic!("bench response must parse: {e}"),
    }
}

/// Peak additional heap bytes while running `f` (inputs already allocated are not counted).
fn peak_of<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (PEAK.load(Ordering::Relaxed) - base, out)
}

fn median_time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn summary(doc: &[u8], ctx: &CallContext, resp: &[u8], resp_wrapped: &[u8], b64: &str) {
    let mb = |n: usize| n as f64 / DOC_SIZE as f64;
    let (p_enc, _) = peak_of(|| STANDARD.encode(doc));
    let (p_build, req) = peak_of(|| build(ctx, doc));
    let (p_dec, _) = peak_of(|| STANDARD.decode(b64));
    let (p_parse, parsed) = peak_of(|| parse(resp));
    let (p_parse_w, parsed_w) = peak_of(|| parse(resp_wrapped));
    assert_eq!(parsed, doc);
    assert_eq!(parsed_w, doc);
    let t_enc = median_time(7, || STANDARD.encode(doc));
    let t_build = median_time(7, || build(ctx, doc));
    let t_dec = median_time(7, || STANDARD.decode(b64));
    let t_parse = median_time(7, || parse(resp));
    let t_parse_w = median_time(7, || parse(resp_wrapped));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "--- SOAP summary for a {} byte document (request {} bytes) ---",
        DOC_SIZE,
        req.len()
    );
    println!(
        "base64 encode        {t_enc:>10.2?}  peak heap {:.2} x doc",
        mb(p_enc)
    );
    println!(
        "build SignDocument   {t_build:>10.2?}  peak heap {:.2} x doc  time ratio vs encode {:.2}",
        mb(p_build),
        ratio(t_build, t_enc)
    );
    println!(
        "base64 decode        {t_dec:>10.2?}  peak heap {:.2} x doc",
        mb(p_dec)
    );
    println!(
        "parse response       {t_parse:>10.2?}  peak heap {:.2} x doc  time ratio vs decode {:.2}",
        mb(p_parse),
        ratio(t_parse, t_dec)
    );
    println!(
        "parse wrapped (CRLF) {t_parse_w:>10.2?}  peak heap {:.2} x doc  time ratio vs decode {:.2}",
        mb(p_parse_w),
        ratio(t_parse_w, t_dec)
    );
}

fn bench(c: &mut Criterion) {
    let doc = document();
    let ctx = context();
    let resp = response(&doc, false);
    let resp_wrapped = response(&doc, true);
    let b64 = STANDARD.encode(&doc);
    summary(&doc, &ctx, &resp, &resp_wrapped, &b64);

    let mut g = c.benchmark_group("soap_25MiB");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(DOC_SIZE as u64));
    g.bench_function("baseline_base64_encode", |b| {
        b.iter(|| STANDARD.encode(black_box(&doc)))
    });
    g.bench_function("build_sign_document", |b| {
        b.iter(|| build(&ctx, black_box(&doc)))
    });
    g.bench_function("baseline_base64_decode", |b| {
        b.iter(|| STANDARD.decode(black_box(&b64)))
    });
    g.bench_function("parse_sign_document_response", |b| {
        b.iter(|| parse(black_box(&resp)))
    });
    g.bench_function("parse_sign_document_response_wrapped", |b| {
        b.iter(|| parse(black_box(&resp_wrapped)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
