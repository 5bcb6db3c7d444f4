//! A_2005 (message content never on disk): a crash of `komle-cm` must not write passwords or
//! mail into a core file. Observed from outside on the real binary:
//!
//! - `/proc/<pid>/limits`: "Max core file size" is 0 (soft and hard), although the test lets
//!   children inherit a higher limit;
//! - not dumpable: the kernel gives a non-dumpable process's `/proc/<pid>` files to root, a
//!   dumpable one's to its own uid. The child runs as `nobody` (when the tests run as root), so
//!   the owner tells the two apart. Negative controls: `sleep` and the daemon with
//!   `[process] allow_core_dumps = true` are dumpable and keep the inherited limit.

mod binary;

use std::process::{Command, Stdio};

use binary::{
    DaemonBed, Running, child_uid, core_limit, proc_owner, proc_uid, raise_own_core_limit,
};

fn assert_hardened(pid: u32, what: &str) {
    assert_eq!(proc_uid(pid), child_uid(), "{what} runs as the child user");
    assert_ne!(child_uid(), 0, "the observation needs a non-root child");
    assert_eq!(
        core_limit(pid),
        ("0".to_owned(), "0".to_owned()),
        "{what}: RLIMIT_CORE"
    );
    assert_eq!(
        proc_owner(pid),
        0,
        "{what}: /proc/{pid} belongs to the process's own uid: it is dumpable"
    );
}

fn assert_dumpable(pid: u32, what: &str) {
    assert_eq!(proc_owner(pid), child_uid(), "{what} should be dumpable");
    assert_ne!(
        core_limit(pid).0,
        "0",
        "{what} kept the inherited core limit"
    );
}

#[test]
fn a_2005_the_observation_tells_dumpable_from_not() {
    raise_own_core_limit();
    let mut sleep = Command::new("sleep");
    sleep.arg("30").stdout(Stdio::null());
    binary::as_child_user(&mut sleep);
    let sleep = Running {
        child: sleep.spawn().unwrap(),
        stderr: binary::Collected::default(),
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_dumpable(sleep.pid(), "sleep");
}

#[test]
fn a_2005_demo_is_not_dumpable_and_writes_no_core() {
    raise_own_core_limit();
    let demo = binary::start_demo(true);
    assert_hardened(demo.process.pid(), "komle-cm demo");
}

#[test]
fn a_2005_daemon_is_not_dumpable_and_writes_no_core_by_default() {
    raise_own_core_limit();
    let bed = DaemonBed::new("");
    let daemon = bed.start(true);
    assert_hardened(daemon.pid(), "komle-cm");
}

#[test]
fn a_2005_allow_core_dumps_keeps_them_and_warns() {
    raise_own_core_limit();
    let bed = DaemonBed::new("[process]\nallow_core_dumps = true\n");
    let daemon = bed.start(true);
    assert_dumpable(daemon.pid(), "komle-cm with allow_core_dumps");
    assert!(
        daemon.stderr.wait_for(
            "allow_core_dumps = true: a crash may write passwords",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        daemon.stderr.text()
    );
}
