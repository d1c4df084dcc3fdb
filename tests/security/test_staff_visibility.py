"""A staff member (导购) sees only the customers they own — on the list, in search, in the CSV
export, on the profile with its timeline and on every page about one customer; another staff
member's customer is a 404, exactly like a customer that does not exist.

In the world, brand A's staff login is 导购甲, who owns 王芳; 导购乙 owns 李雷.
"""

from __future__ import annotations

from siyu.models import Role
from tests.security.conftest import World, route_table

MINE, THEIRS = "王芳", "李雷"


def _link(customer_id: int) -> str:
    return f'href="/customers/{customer_id}"'


def test_staff_list_search_and_export_hold_only_their_own_customers(world: World) -> None:
    world.console(world.a, Role.STAFF)
    listing = world.get("/customers")
    search = world.get("/customers", params={"q": THEIRS})
    own_search = world.get("/customers", params={"q": MINE})
    export = world.get("/customers/export.csv")
    by_owner = world.get("/customers", params={"owner_staff_id": str(world.a.staff_ids[1])})
    mine, theirs = _link(world.a.ids["customer"]), _link(world.a.ids["other_customer"])
    assert [r.status_code for r in (listing, search, own_search, export, by_owner)] == [200] * 5
    assert (mine in listing.text, theirs in listing.text) == (True, False)
    assert (theirs in search.text, mine in own_search.text) == (False, True)
    assert (MINE in export.text, THEIRS in export.text) == (True, False)
    assert theirs not in by_owner.text
    # while an operator sees both (the links are really on these pages)
    world.console(world.a, Role.OPERATOR)
    everyone = world.get("/customers").text
    found = world.get("/customers", params={"q": THEIRS}).text
    assert (mine in everyone, theirs in everyone, theirs in found) == (True, True, True)


def test_staff_get_404_for_another_staff_members_customer_on_every_customer_page(world: World) -> None:
    pages = [
        r for r in route_table(world.app) if r.uses_console_auth and r.method == "GET" and r.params == ["customer_id"]
    ]
    world.console(world.a, Role.STAFF)
    answers: dict[str, tuple[int, int]] = {}
    for page in pages:
        own = world.get(page.path.replace("{customer_id}", str(world.a.ids["customer"])))
        other = world.get(page.path.replace("{customer_id}", str(world.a.ids["other_customer"])))
        answers[page.path] = (own.status_code, other.status_code)
        if page.path == "/customers/{customer_id}":
            # the profile with its timeline is theirs to read, and names nobody else
            assert (MINE in own.text, THEIRS in own.text, THEIRS in other.text) == (True, False, False)
    # Either the page is theirs to open and another's customer is a 404 (as if absent), or the
    # staff role may not open it at all and both answers are the same 403: nothing tells them apart.
    wrong = {path: pair for path, pair in answers.items() if pair not in ((200, 404), (403, 403))}
    assert wrong == {}
    assert answers["/customers/{customer_id}"] == (200, 404)


def test_staff_cannot_edit_another_staff_members_customer(world: World) -> None:
    # given the staff member's console session
    world.console(world.a, Role.STAFF)
    csrf = world.get("/customers").text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    other = world.a.ids["other_customer"]
    with world.isolated():
        # when they try to edit another staff member's customer
        edited = world.request(
            "POST",
            f"/customers/{other}/profile",
            data={"name": "改名", "csrf_token": csrf},
            headers={"x-csrf-token": csrf},
        )
        # then it is a 404 and the name is unchanged
        operator = world.console(world.a, Role.OPERATOR)
        assert edited.status_code == 404
        assert THEIRS in operator.get(f"/customers/{other}").text
