"""Messaging services: channel accounts, the content library, the delivery policy settings, the outbox.

Services take a session and an actor, check the actor's scopes and never commit (handlers do).
"""
