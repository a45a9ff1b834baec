"""catalog/visibility.py's predicates against a reference model, for every app and organization.

The catalogue and installation tests use two or three organizations with random ids, so a
predicate that compares ids with `<=` or `>=` instead of `==` passes them whenever the ids happen
to sort the right way (mutation testing found seven such survivors). Here six organizations have
ids in a known order, with partnerships and shares spread across it, and the predicates are
checked in both forms: an organization id as a value (the catalogue lists) and as a column (the
re-check of installations).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.catalog.visibility import may_install
from apps_api.models import App, AppShare, Organization, Partnership
from tests.fixtures.factories import make_app

# Organization k's id starts with byte 0x10 + 0x20 k: ids sort in k's order whatever follows.
ORGS = 6
# Unordered pairs; each holds both sides of a comparison with a third organization's id.
PARTNERS = {frozenset(pair) for pair in [(0, 3), (1, 4), (2, 5), (3, 4)]}
# (owner, organization): a private app shared with a partner, and with a non-partner (no effect).
SHARES = [(3, 0), (5, 2), (4, 2)]
KINDS = {
    "private": {},
    "partners": {"is_available_to_partners": True},
    "public": {"is_available_to_anyone": True, "is_approved": True},
    "unapproved": {"is_available_to_anyone": True},
}


@dataclass(frozen=True)
class Listed:
    owner: int
    kind: str


def expected(app: Listed, org: int) -> bool:
    """The rule of docs/design.md section 6, spelled out."""
    if app.owner == org or app.kind == "public":
        return True
    partners = frozenset((app.owner, org)) in PARTNERS
    return partners and (app.kind == "partners" or (app.kind == "private" and (app.owner, org) in SHARES))


def org_id(k: int) -> uuid.UUID:
    return uuid.UUID(int=((0x10 + 0x20 * k) << 120) | uuid.uuid4().int >> 8)


async def test_may_install_matches_the_rule_for_every_app_and_organization(session: AsyncSession) -> None:
    orgs = [Organization(id=org_id(k), name=f"Org {k}") for k in range(ORGS)]
    session.add_all(orgs)
    await session.flush()
    for a, b in (sorted(pair) for pair in PARTNERS):
        session.add(Partnership(organization_a_id=orgs[a].id, organization_b_id=orgs[b].id))
    apps: dict[uuid.UUID, Listed] = {}
    for owner in range(ORGS):
        for kind, attributes in KINDS.items():
            app = await make_app(session, orgs[owner], name=f"{kind} of {owner}", **attributes)
            apps[app.id] = Listed(owner, kind)
    for owner, org in SHARES:
        (app_id,) = [key for key, app in apps.items() if app == Listed(owner, "private")]
        session.add(AppShare(app_id=app_id, organization_id=orgs[org].id))
    await session.flush()
    index = {org.id: k for k, org in enumerate(orgs)}
    want = {(app_id, k) for app_id, app in apps.items() for k in range(ORGS) if expected(app, k)}

    # As a value, one organization at a time (the catalogue lists).
    for k, org in enumerate(orgs):
        query = select(App.id).where(App.id.in_(apps), may_install(org.id))
        got = set(await session.scalars(query))
        assert got == {app_id for app_id, j in want if j == k}, f"org {k}"

    # As a column, all pairs at once (installations re-checked after a change).
    query = select(App.id, Organization.id).where(
        App.id.in_(apps), Organization.id.in_(index), may_install(Organization.id)
    )
    got_pairs = {
        (app_id, index[organization]) for app_id, organization in (await session.execute(query)).all()
    }
    assert got_pairs == want
