//! Real mail servers for end-to-end tests: Postfix (SMTPS, SASL via Dovecot, LMTP) and Dovecot (POP3S).
