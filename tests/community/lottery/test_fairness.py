"""Properties of the pure draw: stock, winner counts, determinism, verification, uniformity."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from siyu.community.lottery.fairness import (
    PPM,
    Pick,
    PrizeSpec,
    RandomStream,
    Ticket,
    commitment_of,
    entries_digest,
    pick_winners,
    verify_draw,
)

SEED = "ab" * 32

seeds = st.binary(min_size=32, max_size=32).map(bytes.hex)
ticket_lists = st.lists(st.integers(min_value=1, max_value=8), min_size=0, max_size=40).map(
    lambda customers: [Ticket(ticket_no=i + 1, customer_id=c) for i, c in enumerate(customers)]
)
fixed_prizes = st.lists(
    st.tuples(st.integers(1, 6), st.integers(0, 6)).map(lambda t: (t[0], min(t[0], t[1]) or 1)),
    min_size=1,
    max_size=4,
).map(lambda specs: [PrizeSpec(prize_id=i + 1, stock=s, winners=w) for i, (s, w) in enumerate(specs)])
probability_prizes = st.lists(st.tuples(st.integers(1, 6), st.integers(1, PPM // 4)), min_size=1, max_size=4).map(
    lambda specs: [PrizeSpec(prize_id=i + 1, stock=s, probability_ppm=p) for i, (s, p) in enumerate(specs)]
)


def _verify(
    method: str, seed: str, tickets: list[Ticket], prizes: list[PrizeSpec], picks: list[Pick], once: bool
) -> bool:
    return verify_draw(
        method=method,
        draw_id=7,
        commitment=commitment_of(seed),
        seed_hex=seed,
        digest=entries_digest(tickets),
        tickets=tickets,
        prizes=prizes,
        one_win_per_customer=once,
        winners=picks,
    )


def test_random_blocks_follow_the_published_formula() -> None:
    # the first block is HMAC-SHA256(seed bytes, "7:<digest>:0"); below(n) of a block under the limit is value % n
    digest = "c" * 64
    stream = RandomStream(SEED, 7, digest)
    message = f"7:{digest}:0".encode()
    block = int.from_bytes(hmac.new(bytes.fromhex(SEED), message, hashlib.sha256).digest(), "big")
    assert stream.below(1000) == block % 1000
    assert stream.counter == 1
    assert commitment_of(SEED) == hashlib.sha256(SEED.encode()).hexdigest()
    assert entries_digest([Ticket(2, 9), Ticket(1, 5)]) == hashlib.sha256(b"1:5\n2:9\n").hexdigest()


@settings(max_examples=50, deadline=None)
@given(seed=seeds, tickets=ticket_lists, prizes=fixed_prizes, once=st.booleans())
def test_fixed_draws(seed: str, tickets: list[Ticket], prizes: list[PrizeSpec], once: bool) -> None:
    picks = pick_winners(
        method="fixed",
        draw_id=7,
        seed_hex=seed,
        digest=entries_digest(tickets),
        tickets=tickets,
        prizes=prizes,
        one_win_per_customer=once,
    )
    # no prize over stock, and exactly min(winners, eligible) winners overall
    per_prize = Counter(p.prize_id for p in picks)
    assert all(per_prize[p.prize_id] <= min(p.stock, p.winners or 0) for p in prizes)
    wanted = sum(min(p.stock, p.winners or 0) for p in prizes)
    eligible = len({t.customer_id for t in tickets}) if once else len(tickets)
    assert len(picks) == min(wanted, eligible)
    # one win per ticket (and per customer when asked)
    assert len({p.ticket_no for p in picks}) == len(picks)
    if once:
        owner = {t.ticket_no: t.customer_id for t in tickets}
        assert len({owner[p.ticket_no] for p in picks}) == len(picks)
    # deterministic for a seed, and verifiable
    again = pick_winners(
        method="fixed",
        draw_id=7,
        seed_hex=seed,
        digest=entries_digest(tickets),
        tickets=tickets,
        prizes=prizes,
        one_win_per_customer=once,
    )
    assert again == picks
    assert _verify("fixed", seed, tickets, prizes, picks, once)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, tickets=ticket_lists, prizes=probability_prizes, once=st.booleans())
def test_probability_draws(seed: str, tickets: list[Ticket], prizes: list[PrizeSpec], once: bool) -> None:
    picks = pick_winners(
        method="probability",
        draw_id=7,
        seed_hex=seed,
        digest=entries_digest(tickets),
        tickets=tickets,
        prizes=prizes,
        one_win_per_customer=once,
    )
    per_prize = Counter(p.prize_id for p in picks)
    assert all(per_prize[p.prize_id] <= p.stock for p in prizes)
    assert len({p.ticket_no for p in picks}) == len(picks)
    assert _verify("probability", seed, tickets, prizes, picks, once)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, other=seeds, tickets=ticket_lists.filter(lambda t: len(t) >= 2), prizes=fixed_prizes, data=st.data())
def test_verify_fails_on_any_change(
    seed: str, other: str, tickets: list[Ticket], prizes: list[PrizeSpec], data: st.DataObject
) -> None:
    picks = pick_winners(
        method="fixed",
        draw_id=7,
        seed_hex=seed,
        digest=entries_digest(tickets),
        tickets=tickets,
        prizes=prizes,
        one_win_per_customer=False,
    )
    # a different seed (even re-committed) breaks the commitment
    if other != seed:
        assert not verify_draw(
            method="fixed",
            draw_id=7,
            commitment=commitment_of(seed),
            seed_hex=other,
            digest=entries_digest(tickets),
            tickets=tickets,
            prizes=prizes,
            one_win_per_customer=False,
            winners=picks,
        )
    # a tampered entry list (a customer swapped, a ticket dropped) breaks the digest
    index = data.draw(st.integers(0, len(tickets) - 1))
    swapped = list(tickets)
    swapped[index] = Ticket(ticket_no=tickets[index].ticket_no, customer_id=tickets[index].customer_id + 100)
    assert not _verify_with_digest(seed, tickets, swapped, prizes, picks)
    assert not _verify_with_digest(seed, tickets, tickets[:index] + tickets[index + 1 :], prizes, picks)
    # a changed winner list fails the recomputation
    if picks:
        moved = [Pick(prize_id=picks[0].prize_id, ticket_no=picks[0].ticket_no + 1000), *picks[1:]]
        assert not _verify("fixed", seed, tickets, prizes, moved, False)
    # a garbage seed is "not verified", not a crash
    assert not _verify("fixed", "zz", tickets, prizes, picks, False)


def _verify_with_digest(
    seed: str, published: list[Ticket], shown: list[Ticket], prizes: list[PrizeSpec], picks: list[Pick]
) -> bool:
    return verify_draw(
        method="fixed",
        draw_id=7,
        commitment=commitment_of(seed),
        seed_hex=seed,
        digest=entries_digest(published),
        tickets=shown,
        prizes=prizes,
        one_win_per_customer=False,
        winners=picks,
    )


def test_single_winner_is_uniform_over_many_seeds() -> None:
    # given 10 tickets and one prize, drawn with 2000 different seeds
    tickets = [Ticket(ticket_no=i, customer_id=i) for i in range(1, 11)]
    prizes = [PrizeSpec(prize_id=1, stock=1, winners=1)]
    counts: Counter[int] = Counter()
    for n in range(2000):
        seed = hashlib.sha256(f"seed-{n}".encode()).hexdigest()
        (pick,) = pick_winners(
            method="fixed",
            draw_id=1,
            seed_hex=seed,
            digest=entries_digest(tickets),
            tickets=tickets,
            prizes=prizes,
            one_win_per_customer=True,
        )
        counts[pick.ticket_no] += 1
    # then the counts are consistent with uniform selection (a generous bound: p > 0.001)
    result = chisquare([counts[i] for i in range(1, 11)])
    assert result.pvalue > 0.001


def test_probability_hits_match_the_ppm_roughly() -> None:
    # 4000 tickets, a 25% prize with ample stock: the share of winners lands near 25%
    tickets = [Ticket(ticket_no=i, customer_id=i) for i in range(1, 4001)]
    prizes = [PrizeSpec(prize_id=1, stock=4000, probability_ppm=250_000)]
    picks = pick_winners(
        method="probability",
        draw_id=3,
        seed_hex=SEED,
        digest=entries_digest(tickets),
        tickets=tickets,
        prizes=prizes,
        one_win_per_customer=True,
    )
    result = chisquare([len(picks), 4000 - len(picks)], f_exp=[1000, 3000])
    assert result.pvalue > 0.001


def test_randomness_is_bound_to_the_entry_list() -> None:
    # given the same seed and draw id, and two entry lists that differ by one added ticket
    tickets = [Ticket(ticket_no=i, customer_id=i) for i in range(1, 6)]
    padded = [*tickets, Ticket(ticket_no=6, customer_id=99)]
    # then the random blocks differ (the digest is in the HMAC message), so the list cannot be
    # steered after the seed is known without changing the randomness
    first = RandomStream(SEED, 7, entries_digest(tickets)).below(1 << 200)
    second = RandomStream(SEED, 7, entries_digest(padded)).below(1 << 200)
    assert first != second
    expected = hmac.new(bytes.fromhex(SEED), f"7:{entries_digest(tickets)}:0".encode(), hashlib.sha256).digest()
    assert first == int.from_bytes(expected, "big") % (1 << 200)
