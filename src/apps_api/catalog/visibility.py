"""Who may see and install which app (docs/design.md section 6), as SQL conditions.

Every catalogue view, the install check and the auto-uninstall after a change use these
predicates, so "may install" has exactly one definition. Each predicate takes the
organization as a value or as a column (for example `AppInstallation.organization_id`),
and correlates with the `App` entity of the enclosing query.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, exists, func, or_, select, union_all
from sqlalchemy.orm import InstrumentedAttribute

from apps_api.models import App, AppShare, Partnership

OrganizationRef = uuid.UUID | ColumnElement[Any] | InstrumentedAttribute[Any]


def is_public() -> ColumnElement[bool]:
    """Available to anyone and approved by an operator.

    Spelled as the partial index `ix_apps_public_created` is (`... AND ...`, not `IS true`),
    so PostgreSQL can prove the index applies and walks it in order instead of sorting.
    """
    return and_(App.is_available_to_anyone, App.is_approved)


def partner_ids_of(organization_id: uuid.UUID | BindParameter[Any]) -> Any:
    """The ids of the organization's partners (both halves of the symmetric pair)."""
    return union_all(
        select(Partnership.organization_b_id).where(Partnership.organization_a_id == organization_id),
        select(Partnership.organization_a_id).where(Partnership.organization_b_id == organization_id),
    )


def owner_is_partner_of(organization_id: OrganizationRef) -> ColumnElement[bool]:
    """The app's owner and the organization are partners.

    For one known organization (the catalogue lists; a value or a compiled statement's bound
    parameter) this is a semi-join on its few partners, which drives an index scan of their
    apps; for a column (installations being re-checked) it is one primary-key probe per row.
    """
    owner = App.owned_by_organization_id
    if isinstance(organization_id, uuid.UUID | BindParameter):
        return owner.in_(partner_ids_of(organization_id))
    return exists(
        select(Partnership.organization_a_id).where(
            Partnership.organization_a_id == func.least(owner, organization_id),
            Partnership.organization_b_id == func.greatest(owner, organization_id),
        )
    )


def is_shared_with(organization_id: OrganizationRef) -> ColumnElement[bool]:
    """The owner shared the app with the organization."""
    return exists(
        select(AppShare.id).where(AppShare.app_id == App.id, AppShare.organization_id == organization_id)
    )


def is_partner_app_of(organization_id: OrganizationRef) -> ColumnElement[bool]:
    """A partner's app that is available to partners or shared with the organization."""
    return and_(
        App.owned_by_organization_id != organization_id,
        owner_is_partner_of(organization_id),
        or_(App.is_available_to_partners.is_(True), is_shared_with(organization_id)),
    )


def may_install(organization_id: OrganizationRef) -> ColumnElement[bool]:
    """The organization may install the app: the owner, anyone if public, or a partner it is offered to."""
    return or_(
        App.owned_by_organization_id == organization_id,
        is_public(),
        is_partner_app_of(organization_id),
    )
