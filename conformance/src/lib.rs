//! Konformance: transcripts, Konnektor simulator, test PKI, real-server harness.
