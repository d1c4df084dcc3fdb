"""The provably fair part of a draw: commitment, entry digest, randomness and winner selection.

Everything here is pure (no database), so the public verify page and anyone with the published
data can recompute a draw exactly:

- `commitment = sha256(seed_hex)` (the 64 hex characters, ASCII), published when the draw opens;
- `digest = sha256("ticket:customer\\n"…)` of the frozen entry list in ticket order;
- the k-th random block is `HMAC-SHA256(key=bytes.fromhex(seed), msg=f"{draw_id}:{digest}:{k}")`
  (digest = the entry digest above, 64 lowercase hex characters) read as a big-endian 256-bit
  integer, k = 0, 1, 2…; an integer in [0, n) is taken by rejection sampling
  (blocks ≥ the largest multiple of n below 2**256 are skipped), so no value is favoured;
- fixed draws pick, per prize in prize order, min(winners, stock) winners without replacement from
  the tickets still eligible (a ticket wins once; with `one_win_per_customer` a customer wins once);
- probability draws take one uniform integer u in [0, 1 000 000) per ticket in ticket order and give
  the first prize, among those with stock left, whose cumulative ppm exceeds u.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

PPM = 1_000_000
_SPACE = 1 << 256


def commitment_of(seed_hex: str) -> str:
    """The public commitment to a seed: sha256 of its hex text."""
    return hashlib.sha256(seed_hex.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Ticket:
    """One frozen entry as the draw sees it."""

    ticket_no: int
    customer_id: int


@dataclass(frozen=True)
class PrizeSpec:
    """A prize as the draw sees it (prize order = list order)."""

    prize_id: int
    stock: int
    winners: int | None = None
    probability_ppm: int | None = None


@dataclass(frozen=True)
class Pick:
    """A winning ticket and its prize."""

    prize_id: int
    ticket_no: int


def entries_digest(tickets: Sequence[Ticket]) -> str:
    """sha256 of the "ticket:customer" lines, in ticket order, each ending with a newline."""
    text = "".join(f"{t.ticket_no}:{t.customer_id}\n" for t in sorted(tickets, key=lambda t: t.ticket_no))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class RandomStream:
    """Unbiased integers derived from the seed, the draw id and the frozen entry list's digest.

    Binding the digest means the randomness changes with any change to the entry list, so an
    operator who knows the seed cannot add or drop entries to steer the outcome."""

    def __init__(self, seed_hex: str, draw_id: int, digest: str) -> None:
        self._key = bytes.fromhex(seed_hex)
        self._prefix = f"{draw_id}:{digest}:"
        self.counter = 0

    def _block(self) -> int:
        message = f"{self._prefix}{self.counter}".encode("ascii")
        self.counter += 1
        return int.from_bytes(hmac.new(self._key, message, hashlib.sha256).digest(), "big")

    def below(self, n: int) -> int:
        """A uniform integer in [0, n) by rejection sampling."""
        if n <= 0:
            raise ValueError("n must be positive")
        limit = _SPACE - _SPACE % n
        while True:
            value = self._block()
            if value < limit:
                return value % n


def pick_winners(
    *,
    method: str,
    draw_id: int,
    seed_hex: str,
    digest: str,
    tickets: Sequence[Ticket],
    prizes: Sequence[PrizeSpec],
    one_win_per_customer: bool,
) -> list[Pick]:
    """The winners of a draw, deterministic for (seed, draw id, digest, tickets, prizes); `digest`
    is `entries_digest(tickets)`, the frozen list the random stream is bound to."""
    stream = RandomStream(seed_hex, draw_id, digest)
    ordered = sorted(tickets, key=lambda t: t.ticket_no)
    won_customers: set[int] = set()
    picks: list[Pick] = []
    if method == "fixed":
        won_tickets: set[int] = set()
        for prize in prizes:
            for _ in range(min(prize.winners or 0, prize.stock)):
                eligible = [
                    t
                    for t in ordered
                    if t.ticket_no not in won_tickets and not (one_win_per_customer and t.customer_id in won_customers)
                ]
                if not eligible:
                    break
                chosen = eligible[stream.below(len(eligible))]
                won_tickets.add(chosen.ticket_no)
                won_customers.add(chosen.customer_id)
                picks.append(Pick(prize_id=prize.prize_id, ticket_no=chosen.ticket_no))
        return picks
    left = {prize.prize_id: prize.stock for prize in prizes}
    for ticket in ordered:
        if one_win_per_customer and ticket.customer_id in won_customers:
            continue
        if not any(left[p.prize_id] > 0 and (p.probability_ppm or 0) > 0 for p in prizes):
            break
        roll = stream.below(PPM)
        cumulative = 0
        for prize in prizes:
            if left[prize.prize_id] <= 0:
                continue
            cumulative += prize.probability_ppm or 0
            if roll < cumulative:
                left[prize.prize_id] -= 1
                won_customers.add(ticket.customer_id)
                picks.append(Pick(prize_id=prize.prize_id, ticket_no=ticket.ticket_no))
                break
    return picks


def verify_draw(
    *,
    method: str,
    draw_id: int,
    commitment: str,
    seed_hex: str,
    digest: str,
    tickets: Sequence[Ticket],
    prizes: Sequence[PrizeSpec],
    one_win_per_customer: bool,
    winners: Sequence[Pick],
) -> bool:
    """True when the seed matches the commitment, the tickets the digest, and the winners recompute."""
    try:
        if not hmac.compare_digest(commitment_of(seed_hex), commitment):
            return False
        if not hmac.compare_digest(entries_digest(tickets), digest):
            return False
        expected = pick_winners(
            method=method,
            draw_id=draw_id,
            seed_hex=seed_hex,
            digest=digest,
            tickets=tickets,
            prizes=prizes,
            one_win_per_customer=one_win_per_customer,
        )
    except (ValueError, UnicodeEncodeError):
        return False
    return sorted(expected, key=lambda p: p.ticket_no) == sorted(winners, key=lambda p: p.ticket_no)
