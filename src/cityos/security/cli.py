"""Identity on the command line (docs/security.md, "Identity"): ``cityos users``,
``cityos token`` and ``cityos keys`` — CityOS's own users, the tokens it issues them and
API keys for devices and services."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from cityos.clikit import DbOption, JsonOption, console, err, load_settings, open_database
from cityos.config import Settings

users_app = typer.Typer(
    help="CityOS's own users (for deployments without an identity provider).",
    no_args_is_help=True,
)
token_app = typer.Typer(help="Tokens CityOS issues to its own users.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys for devices and services (stored only as hashes).", no_args_is_help=True
)

TenantsOption = Annotated[
    list[str],
    typer.Option(
        "--tenant",
        "-t",
        help="A tenant (repeatable); @default for the default tenant, * for all of them.",
    ),
]
RolesOption = Annotated[list[str], typer.Option("--role", "-r", help="A role (repeatable).")]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first stdin line.")
]


def _identity_store(database_url: str | None) -> tuple[Settings, Any]:
    settings = load_settings(database_url)
    store = open_database(settings)
    store.migrate()  # the registry the users and keys live in
    return settings, store


def _read_password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)


def _when(epoch: float | None) -> str:
    import time as _time

    return "" if epoch is None else _time.strftime("%Y-%m-%d %H:%M:%SZ", _time.gmtime(epoch))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user's name (what they log in with).")],
    tenant: TenantsOption,
    role: RolesOption,
    password_stdin: PasswordStdinOption = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an existing user (ends its tokens).")
    ] = False,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add a user: password hashed with argon2id, tenants and roles for its tokens."""
    from cityos.security.users import UserError, add_user

    password = _read_password(password_stdin, confirm=True)
    _, store = _identity_store(database_url)
    try:
        doc = add_user(store, name, password, tenants=tenant, roles=role, replace=replace)
    except UserError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        store.close()
    if json_out:
        print(json.dumps(doc))
    else:
        console.print(f"user {name} {'replaced' if replace else 'added'}")


@users_app.command("list")
def users_list(database_url: DbOption = None, json_out: JsonOption = False) -> None:
    """The users (never their password hashes)."""
    from cityos.security.principal import tenant_label
    from cityos.security.users import list_users

    _, store = _identity_store(database_url)
    try:
        docs = list_users(store)
    finally:
        store.close()
    if json_out:
        print(json.dumps(docs))
        return
    table = Table(title="Users")
    for col in ("name", "tenants", "roles", "created"):
        table.add_column(col)
    for d in docs:
        tenants = ", ".join(tenant_label(t) for t in d["tenants"])
        table.add_row(d["name"], tenants, ", ".join(d["roles"]), _when(d["created"]))
    console.print(table)


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
    database_url: DbOption = None,
) -> None:
    """Remove a user; the tokens it holds are refused within auth_recheck_s."""
    from cityos.security.users import remove_user

    _, store = _identity_store(database_url)
    try:
        removed = remove_user(store, name)
    finally:
        store.close()
    if not removed:
        err.print(f"[red]no user {name!r}[/red]")
        raise typer.Exit(1)
    console.print(f"user {name} removed")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", "-u", help="The user the token is for.")],
    password_stdin: PasswordStdinOption = False,
    ttl: Annotated[
        str | None,
        typer.Option(help="Lifetime: 15m, 1h, 7d (default: the token_ttl_s setting)."),
    ] = None,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Print a token (JWT, EdDSA-signed by CityOS's issuer key) for a user, after checking
    their password; send it as 'Authorization: Bearer <token>'."""
    from cityos.security.keys import parse_duration
    from cityos.security.tokens import issue_token, own_key
    from cityos.security.users import check_password

    try:
        ttl_s = parse_duration(ttl) if ttl else None
    except ValueError as exc:
        err.print(f"[red]--ttl: {exc}[/red]")
        raise typer.Exit(2) from exc
    password = _read_password(password_stdin, confirm=False)
    settings, store = _identity_store(database_url)
    try:
        doc = check_password(store, user, password)
    finally:
        store.close()
    if doc is None:
        err.print("[red]wrong user name or password[/red]")
        raise typer.Exit(1)
    try:
        token, claims = issue_token(
            own_key(settings.token_key_path), doc, ttl_s or settings.token_ttl_s
        )
    except (ValueError, OSError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if json_out:
        body = {"access_token": token, "token_type": "Bearer"}
        body.update(expires_in=claims["exp"] - claims["iat"], expires_at=claims["exp"])
        print(json.dumps(body))
    else:
        print(token)


@keys_app.command("create")
def keys_create(
    tenant: TenantsOption,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", "-r", help="A role (repeatable); device keys: 'device' if none."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime: 90d, 12h, P1Y… (default: never expires).")
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists).")] = "",
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="A device key for the service group with this apikey (in its one --tenant).",
        ),
    ] = None,
    device_id: Annotated[
        str | None, typer.Option(help="With --device: bind the key to this one device.")
    ] = None,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create an API key and print it — once: only its hash is kept. Send it as
    'X-API-Key: <key>' (or 'Authorization: ApiKey <key>')."""
    from cityos.security.keys import ApiKeyError, create_key, parse_duration

    try:
        expires_s = parse_duration(expires) if expires else None
    except ValueError as exc:
        err.print(f"[red]--expires: {exc}[/red]")
        raise typer.Exit(2) from exc
    _, store = _identity_store(database_url)
    try:
        key, doc = create_key(
            store,
            tenants=tenant,
            roles=role or (["device"] if device else []),
            name=name,
            expires_in_s=expires_s,
            service_group=device,
            device_id=device_id,
        )
    except ApiKeyError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        store.close()
    if json_out:
        print(json.dumps({"key": key, **doc}))
        return
    print(key)
    err.print(f"API key {doc['id']} — copy it now, it is not shown again")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only keys that reach this tenant.")
    ] = None,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """The API keys (ids, scopes, expiry, status; never the keys)."""
    from cityos.security.keys import key_status, list_keys
    from cityos.security.principal import tenant_label, tenant_name

    try:
        wanted = tenant_name(tenant) if tenant is not None else None
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    _, store = _identity_store(database_url)
    try:
        docs = [{**d, "status": key_status(d)} for d in list_keys(store, wanted)]
    finally:
        store.close()
    if json_out:
        print(json.dumps(docs))
        return
    table = Table(title="API keys")
    table.add_column("id", no_wrap=True)
    for col in ("name", "kind", "tenants", "roles", "device", "expires"):
        table.add_column(col)
    table.add_column("status", no_wrap=True)
    for d in docs:
        group = d.get("service_group") or ""
        if group and d.get("device_id"):
            group += f"/{d['device_id']}"
        table.add_row(
            d["id"],
            d["name"],
            d["kind"],
            ", ".join(tenant_label(t) for t in d["tenants"]),
            ", ".join(d["roles"]),
            group,
            _when(d["expires"]) or "never",
            d["status"],
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (or the whole key).")],
    reason: Annotated[str, typer.Option(help="Why (told to whoever still uses it).")] = "",
    database_url: DbOption = None,
) -> None:
    """Revoke an API key: refused from then on (within auth_recheck_s in running hubs)."""
    from cityos.security.keys import parse_key, revoke_key

    parsed = parse_key(key_id)
    if parsed is not None:  # the whole key was given: its id
        key_id = parsed[0]
    _, store = _identity_store(database_url)
    try:
        doc = revoke_key(store, key_id, reason)
    finally:
        store.close()
    if doc is None:
        err.print(f"[red]no API key {key_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"API key {key_id} revoked")
