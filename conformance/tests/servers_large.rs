//! Large messages straight to Postfix: the baseline for "through komle-cm vs straight to
//! Postfix". Prints the measured times (run with `--nocapture` to see them).

mod servers_support;

use std::time::{Duration, Instant};

use servers_support::*;

/// A message of about `size` bytes: headers plus base64-like 76-column lines, as an S/MIME
/// message from the Clientmodul would look.
fn large_message(size: usize, marker: &str) -> Vec<u8> {
    let mut msg = message(ALICE, &[BOB], marker);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0usize;
    while msg.len() < size {
        for _ in 0..76 {
            msg.push(alphabet[i % alphabet.len()]);
            i = i.wrapping_mul(31).wrapping_add(7) % 1_000_003;
        }
        msg.extend_from_slice(b"\r\n");
    }
    msg
}

fn send_and_measure(size: usize, marker: &str) {
    let s = start_two_users();
    let msg = large_message(size, marker);
    let began = Instant::now();
    let out = curl_send(&s, ALICE, ALICE_PW, ALICE, &[BOB], &msg, &[]);
    let accepted = began.elapsed();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        s.postfix_log_tail()
    );
    let mails = s
        .wait_for_messages(BOB, 1, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", s.postfix_log_tail()));
    let delivered = began.elapsed();
    eprintln!(
        "{marker}: {} bytes via curl SMTPS: accepted (250 after DATA) in {accepted:?}, \
         in the Maildir after {delivered:?}",
        msg.len()
    );
    assert_eq!(mails.len(), 1);
    let body = to_crlf(body_of(&mails[0]));
    assert_eq!(body.len(), body_of(&msg).len(), "body length unchanged");
    assert!(body == body_of(&msg), "body bytes unchanged");
}

#[test]
fn a_25_mb_message_goes_through_smtps_to_the_maildir() {
    send_and_measure(25 * 1000 * 1000, "large-25mb");
}

#[test]
fn a_40_mb_message_is_within_the_size_limit() {
    send_and_measure(40 * 1000 * 1000, "large-40mb");
}
