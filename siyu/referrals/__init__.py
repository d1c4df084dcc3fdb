"""Referral programs and fission (裂变, 老带新): codes, posters, attribution, anti-fraud, rewards, metrics,
and distribution commission for approved KOCs (`siyu.referrals.commission`)."""
