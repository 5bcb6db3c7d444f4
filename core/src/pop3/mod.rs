//! POP3 proxy (gemSpec_CM_KOMLE §3.3): codec and sans-IO session state machine.
