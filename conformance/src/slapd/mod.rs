//! OpenLDAP slapd started from a temp dir as the directory service (VZD) for tests.
