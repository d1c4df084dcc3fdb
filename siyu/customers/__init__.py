"""The customer pool (承接, OneID): customers, identities, tags, consent, timeline, import."""
