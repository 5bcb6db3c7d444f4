//! Konnektor SOAP services: service discovery, requests and response parsing (bytes in, bytes out).
