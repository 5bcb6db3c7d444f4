//! Locating gematik's official S/MIME sample chain (see spec/samples/README.md) for golden tests.

use std::path::PathBuf;

/// `…/shared/spec/samples/smime-profil`, searched from `CARGO_MANIFEST_DIR/../../shared` and
/// `<workspace>/../shared`; `None` when the shared spec folder is not present.
pub fn smime_profile_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../../shared/spec/samples/smime-profil"),
        manifest.join("../../../shared/spec/samples/smime-profil"),
        PathBuf::from("/work/shared/spec/samples/smime-profil"),
    ];
    candidates.into_iter().find(|p| p.is_dir())
}
