//! Directory (VZD) access over LDAP with ldap3, run off the smol executor.
