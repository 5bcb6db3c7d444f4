//! Both runtimes deliver through the same environment: a larger message and concurrent
//! sessions all get 250 and all arrive at the MTA.

#[test]
fn both_runtimes_deliver_large_and_concurrent_messages() {
    let both = komle_examples::compare::start(32).unwrap();
    for addr in [both.smol, both.tokio] {
        let (_, ok) = komle_examples::compare::send(&both.env, addr, 256 * 1024).unwrap();
        assert!(ok);
    }
    let (_, ok_smol) = komle_examples::compare::concurrent(&both.env, both.smol, 10);
    let (_, ok_tokio) = komle_examples::compare::concurrent(&both.env, both.tokio, 10);
    assert_eq!((ok_smol, ok_tokio), (10, 10));
    assert_eq!(both.env.mta.received().len(), 22);
}
