//! The KOM-LE S/MIME profile (gemSMIME_KOMLE): protecting outgoing and opening incoming mail.
