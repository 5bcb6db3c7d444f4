//! Drive the KOM-LE Clientmodul core inside an existing tokio service.
