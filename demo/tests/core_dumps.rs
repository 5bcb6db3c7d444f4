//! A_2005 (message content never on disk): a crash of the demo must not write passwords or
//! mail into a core file either. Observed from outside on the real `komle-demo` binary as
//! `runtime-smol/tests/core_dumps.rs` does for the daemon: "Max core file size" 0 and not
//! dumpable (the child runs as `nobody` when the tests run as root).

#[path = "../../runtime-smol/tests/binary/mod.rs"]
mod binary;
mod demo_process;

use binary::{assert_hardened, raise_own_core_limit};

#[test]
fn a_2005_demo_is_not_dumpable_and_writes_no_core() {
    raise_own_core_limit();
    let demo = demo_process::start_demo(true);
    assert_hardened(demo.process.pid(), "komle-demo");
}
