//! Hostile input never panics: mutated and truncated CMS, random bytes, random SOAP bodies all
//! end in typed errors (or, for harmless mutations, in ordinary results).

use std::path::PathBuf;

use komle_conformance::sim::ber::Node;
use komle_conformance::sim::decrypt::decrypt_document;
use komle_conformance::sim::keys::pem_to_der;
use komle_conformance::sim::samples::smime_profile_dir;
use komle_conformance::sim::verify::{VerifyPolicy, verify_document};
use komle_conformance::sim::{KeyMaterial, SimConfig, Simulator, xml};
use proptest::prelude::*;

fn samples() -> PathBuf {
    smime_profile_dir().unwrap()
}

fn key_b() -> KeyMaterial {
    let d = samples().join("recipientB");
    KeyMaterial {
        cert_der: pem_to_der(&std::fs::read_to_string(d.join("hci-enc-3-kim-bsp.pem")).unwrap())
            .unwrap(),
        private_key_pkcs8_der: pem_to_der(
            &std::fs::read_to_string(d.join("hci-enc-3-kim-bsp.prv.pem")).unwrap(),
        )
        .unwrap(),
    }
}

fn policy() -> VerifyPolicy<'static> {
    VerifyPolicy {
        trust_anchors: &[],
        revoked_serials: &[],
        now_unix: 1_640_995_200,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn mutated_sample04_never_panics_and_never_yields_other_plaintext(
        pos in 0usize..4800, bit in 0u8..8, cut in 0usize..4800
    ) {
        let orig = std::fs::read(samples().join("inputEmail.txt.04.encryptedcms")).unwrap();
        let expected = std::fs::read(samples().join("inputEmail.txt.03.signedwrap")).unwrap();
        let mut m = orig.clone();
        let p = pos % m.len();
        m[p] ^= 1 << bit;
        // GCM authenticates the content: either an error or exactly the original plaintext
        // (e.g. when the flipped bit sits in the unauthenticated unauthAttrs).
        if let Ok(plain) = decrypt_document(&[key_b()], &m) {
            prop_assert_eq!(plain, expected.clone());
        }
        let truncated = &orig[..cut % orig.len()];
        prop_assert!(decrypt_document(&[key_b()], truncated).is_err());
    }

    #[test]
    fn mutated_sample02_never_panics(pos in 0usize..3200, bit in 0u8..8, cut in 0usize..3200) {
        let orig = std::fs::read(samples().join("inputEmail.txt.02.signedcms")).unwrap();
        let mut m = orig.clone();
        let p = pos % m.len();
        m[p] ^= 1 << bit;
        let _ = verify_document(&m, &policy());
        prop_assert!(verify_document(&orig[..cut % orig.len()], &policy()).is_err());
    }

    #[test]
    fn random_bytes_are_rejected_without_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Node::parse(&data);
        let _ = decrypt_document(&[key_b()], &data);
        let _ = verify_document(&data, &policy());
        let _ = xml::parse(&data);
        let sim = Simulator::new(SimConfig::default());
        let r = sim.handle("", &data);
        prop_assert_eq!(r.status, 500);
    }
}
