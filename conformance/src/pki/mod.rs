//! Test PKI generator: CA, SM-B and HBA cards, persons with e-mail and Telematik-ID, LDIF for slapd.
