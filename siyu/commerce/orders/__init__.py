"""Orders: ingestion (API, batch, import, webhook), refunds, and the first-order / repurchase flags."""
