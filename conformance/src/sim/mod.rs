//! Konnektor simulator: SOAP over HTTPS with real CMS cryptography.
