//! KOM-LE directory service (VZD) lookups, certificate inspection and the certificate cache.
