//! `komle-cm`: the KOM-LE Clientmodul daemon.
fn main() {
    env_logger::init();
}
