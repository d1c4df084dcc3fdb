"""Messaging (触达): channel adapters, content, the delivery policy, planning and sending of deliveries."""
