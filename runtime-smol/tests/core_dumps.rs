//! A_2005 (message content never on disk): a crash of `komle-cm` must not write passwords or
//! mail into a core file. Observed from outside on the real binary:
//!
//! - `/proc/<pid>/limits`: "Max core file size" is 0 (soft and hard), although the test lets
//!   children inherit a higher limit;
//! - not dumpable: the kernel gives a non-dumpable process's `/proc/<pid>` files to root, a
//!   dumpable one's to its own uid. The child runs as `nobody` (when the tests run as root), so
//!   the owner tells the two apart. Negative controls: `sleep` and the daemon with
//!   `[process] allow_core_dumps = true` are dumpable and keep the inherited limit. The demo
//!   binary is observed the same way in `demo/tests/core_dumps.rs`.

mod binary;
mod daemon_bed;

use std::process::{Command, Stdio};

use binary::{Running, assert_dumpable, assert_hardened, raise_own_core_limit};
use daemon_bed::DaemonBed;

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
