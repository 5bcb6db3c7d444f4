//! The load tool's pieces against the embedded environment: timed messages go through the
//! proxy and straight to the mail service, and concurrent clients all succeed.

use komle_examples::load;
use komle_smol::embedded::{Embedded, EmbeddedOptions, PASSWORD};

#[test]
fn timed_messages_through_the_proxy_and_straight_are_delivered() {
    let env = Embedded::start(&EmbeddedOptions::default()).unwrap();
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
