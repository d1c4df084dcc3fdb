"""WeCom callbacks: verification, decryption, the inbox, customer-contact events and welcome messages."""
