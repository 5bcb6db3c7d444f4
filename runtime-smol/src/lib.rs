//! The smol runtime of the KOM-LE Clientmodul: the I/O around `komle-core`.

pub mod ldap;
