//! Examples of embedding the KOM-LE Clientmodul.
