"""`/owned_apps/{app_id}/installations/{installation_id}/app_user_tokens`: the provider's app-user tokens."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response

from apps_api.app_user_tokens import service
from apps_api.app_user_tokens.dependencies import OwnedInstallationDep, ReadOwnedInstallation
from apps_api.app_user_tokens.schemas import NewOwnedAppUserToken, OwnedAppUserToken, OwnedAppUserTokenInput
from apps_api.auth.dependencies import ProviderReader, ProviderWriter
from apps_api.kit.errors import error_responses
from apps_api.kit.pagination import Page, PageParamsDep, json_keyset_page
from apps_api.models import ApiToken, AppInstallation

# No body: a token that never expires.
_NO_BODY = OwnedAppUserTokenInput()

router = APIRouter(
    prefix="/api/v5/orgs/{organization_id}/owned_apps/{app_id}/installations/{installation_id}/app_user_tokens",
    tags=["App-user tokens"],
)

TokenId = Annotated[uuid.UUID, Path(description="The ID of the app-user token.")]


def _view(token: ApiToken, installation: AppInstallation) -> OwnedAppUserToken:
    return OwnedAppUserToken(
        id=token.id,
        app_user_id=token.user_id,
        installation_id=installation.id,
        organization_id=installation.organization_id,
        created_at=token.created_at,
        expires_at=token.expires_at,
    )


@router.post(
    "",
    response_model=NewOwnedAppUserToken,
    status_code=201,
    summary="Create an API token of an installation's app user",
    responses=error_responses(400, 401, 403, 404),
)
async def create_app_user_token(
    installation: OwnedInstallationDep,
    writer: ProviderWriter,
    data: Annotated[OwnedAppUserTokenInput, Body()] = _NO_BODY,
) -> NewOwnedAppUserToken:
    """The token acts as the app user (`Authorization: Token <token>`) within the installation's
    `allowed_scopes`, in the installing organization only. Its key is in this answer only.
    404 when the installation has no app user. Uninstalling the app revokes it."""
    token, key = await service.mint(
        session=writer.session, installation=installation, expires_at=data.expires_at
    )
    return NewOwnedAppUserToken(**_view(token, installation).model_dump(), token=key)


@router.get(
    "",
    response_model=Page[OwnedAppUserToken],
    summary="List the API tokens of an installation's app user",
    responses=error_responses(400, 401, 403, 404),
)
async def list_app_user_tokens(
    request: Request, installation: ReadOwnedInstallation, reader: ProviderReader, params: PageParamsDep
) -> Response:
    """The app user's live tokens (also those exchanged through `/identity/token`), newest first;
    never their keys."""
    installation_id, organization_id = installation["id"], installation["organization_id"]

    def view(row: Any) -> dict[str, Any]:
        # OwnedAppUserToken's fields, in its order.
        return {
            "id": row["id"],
            "app_user_id": row["user_id"],
            "installation_id": installation_id,
            "organization_id": organization_id,
            "created_at": row["created_at"],
            "expires_at": row["expires_at"],
        }

    return await json_keyset_page(
        reader.db,
        service.TOKENS_PAGE,
        view,
        conditions=service.TOKENS_CONDITIONS,
        params=params,
        request=request,
        installation_id=installation_id,
    )


@router.delete(
    "/{token_id}",
    status_code=204,
    summary="Revoke an API token of an installation's app user",
    responses=error_responses(400, 401, 403, 404),
)
async def delete_app_user_token(
    token_id: TokenId, installation: OwnedInstallationDep, writer: ProviderWriter
) -> Response:
    """The token answers 401 from now on."""
    await service.revoke(session=writer.session, installation=installation, token_id=token_id)
    return Response(status_code=204)
