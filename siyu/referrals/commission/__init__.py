"""Distribution (分销): commission rules, the append-only commission ledger, statements and settlement."""
