"""Dovecot IMAP server fixture (filled in by the IMAP source work)."""
