//! The load tool's pieces against the embedded environment: timed messages go through the
//! proxy and straight to the mail service, and concurrent clients all succeed.

use komle_demo::embedded::{Embedded, EmbeddedOptions, PASSWORD};
use komle_examples::{big_message, load};

#[test]
fn timed_messages_through_the_proxy_and_straight_are_delivered() {
    // The straight baseline is a bench client without the C.CM.TLS-CS (as in komle-load).
    let env = Embedded::start(&EmbeddedOptions {
        mail_service_admits_clients_without_certificate: true,
        ..EmbeddedOptions::default()
    })
    .unwrap();
    let tls = load::insecure_client();
    let sender = env.world.pki.sender.address.clone();
    let rcpt = env.world.pki.single.address.clone();
    let t =
        load::timed_message(env.proxy_addr, &tls, &env.login(), PASSWORD, &sender, &rcpt).unwrap();
    assert!(t.iter().all(|d| !d.is_zero()));
    load::timed_message(env.mta.addr(), &tls, &sender, PASSWORD, &sender, &rcpt).unwrap();
    assert_eq!(env.mta.received().len(), 2);
    let (addr, login) = (env.proxy_addr, env.login());
    let (times, failures, _) = load::run_clients(4, 2, move || {
        load::timed_message(addr, &tls, &login, PASSWORD, &sender, &rcpt)
    });
    assert_eq!(failures, 0);
    assert_eq!(times[5].len(), 8);
    assert_eq!(env.mta.received().len(), 10);
    let mut v = vec![
        std::time::Duration::from_millis(3),
        std::time::Duration::from_millis(1),
    ];
    assert_eq!(
        load::percentile(&mut v, 50),
        std::time::Duration::from_millis(1)
    );
    assert!(load::rss_kib(std::process::id()).unwrap() > 0);
}

/// The benchmarks' precomputed Konnektor hits honestly with the real proxy (issue 9): the same
/// mail sent twice costs SignDocument + EncryptDocument once; the second pass's requests differ
/// only in the JobNumber, so the simulator answers them from memory, and the MTA still gets
/// both messages, byte-identical.
#[test]
fn precomputed_konnektor_answers_the_second_send_of_the_same_mail_without_crypto() {
    let env = Embedded::start(&EmbeddedOptions {
        precomputed_konnektor: true,
        ..EmbeddedOptions::default()
    })
    .unwrap();
    let sim = env.sim.simulator();
    let tls = load::insecure_client();
    let sender = env.world.pki.sender.address.clone();
    let rcpt = env.world.pki.single.address.clone();
    let mail = big_message::mail_of_size(&sender, &rcpt, 200_000);
    let send = || {
        big_message::timed_send(
            env.proxy_addr,
            &tls,
            &env.login(),
            PASSWORD,
            &sender,
            &rcpt,
            &mail,
        )
        .unwrap()
    };
    send();
    assert_eq!(
        sim.crypto_operations(),
        2,
        "sign + encrypt on the first pass"
    );
    send();
    assert_eq!(sim.crypto_operations(), 2, "the second pass ran crypto");
    assert_eq!(sim.memo().unwrap().hits(), 2);
    let received = env.mta.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].data, received[1].data);
    // komle-load's "protected size" baseline is within 2 % of what the proxy really delivers.
    let (real, estimate) = (
        received[0].data.len() as f64,
        big_message::protected_size_estimate(mail.len()) as f64,
    );
    assert!((estimate / real - 1.0).abs() < 0.02, "{estimate} vs {real}");
}
