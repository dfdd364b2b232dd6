"""``cityos audit`` (docs/security.md, "Audit"): verify the log, export a checkpoint,
sign a tree head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cityos.clikit import DbOption, JsonOption, console, err, load_settings, open_database

app = typer.Typer(
    help="The audit log: verify it, export a checkpoint, sign a tree head.", no_args_is_help=True
)

AuditKeyOption = Annotated[
    str | None,
    typer.Option("--key", help="The signing key, PEM (default: CITYOS_AUDIT_KEY_PATH)."),
]


def _audit_log(database_url: str | None, key: str | None):  # type: ignore[no-untyped-def]
    from cityos.security.audit import AuditLog

    settings = load_settings(database_url)
    store = open_database(settings)
    if store.schema_version() == 0:
        store.close()
        err.print(f"{settings.database_url} has no CityOS schema yet: run 'cityos db init'")
        raise typer.Exit(1)
    path = key or settings.audit_key_path
    return AuditLog(store, key_path=path, anchor_path=settings.audit_anchor_path), store


@app.command("verify")
def audit_verify(
    database_url: DbOption = None,
    key: AuditKeyOption = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", exists=True, dir_okay=False, help="Check signatures with this PEM."
        ),
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            exists=True,
            dir_okay=False,
            help="A signed head kept outside the database (default: CITYOS_AUDIT_ANCHOR_PATH,"
            " else audit-anchor-<database>.json beside the key): the log must still reach it.",
        ),
    ] = None,
    expect_size: Annotated[
        int | None,
        typer.Option("--expect-size", min=0, help="The log held at least N records ..."),
    ] = None,
    expect_root: Annotated[
        str | None,
        typer.Option("--expect-root", help="... and the tree of the first N had this root (hex)."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Recompute the audit log from its records and check every signed tree head and the
    anchor. Exit 1, naming the records, if any was edited, deleted, inserted, reordered or
    malformed, or the log no longer reaches its anchor; 2 if it cannot be checked."""
    from cityos.security.audit import AuditError, AuditKey, verify_log

    if (expect_size is None) != (expect_root is None):
        err.print("[red]--expect-size and --expect-root go together[/red]")
        raise typer.Exit(2)
    log, store = _audit_log(database_url, key)
    try:
        anchors = _anchors(anchor or log.anchor_path, anchor is not None, expect_size, expect_root)
        try:
            checker = AuditKey.from_pem(public_key.read_bytes()) if public_key else log.public_key()
        except (AuditError, ValueError) as exc:
            if any(a.head for a in anchors) or _has_heads(store):
                err.print(f"[red]cannot check the signed tree heads:[/red] {exc} (--public-key)")
                raise typer.Exit(2) from exc
            checker = None  # nothing signed yet: nothing to check signatures of
        report = verify_log(store, checker, anchors)
    finally:
        store.close()
    _print_verify(report, anchor or log.anchor_path, json_out)
    raise typer.Exit(0 if report.ok else 1)


def _anchors(path: Path | None, given: bool, size: int | None, root: str | None) -> list:
    """What the log must still reach: the anchor file (when there is one) and the expected
    size and root."""
    from cityos.security.audit import Anchor

    anchors = [Anchor.from_file(path)] if path is not None and (given or path.exists()) else []
    if size is not None and root is not None:
        try:
            anchors.append(Anchor.expected(size, root))
        except ValueError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    return anchors


def _has_heads(store) -> bool:  # type: ignore[no-untyped-def]
    """Whether any signed head is stored (a row that cannot be read counts as one)."""
    try:
        return bool(store.audit.raw("audit_heads", 0, 1))
    except Exception:
        return True


def _print_verify(report, anchor_path: Path | None, json_out: bool) -> None:  # type: ignore[no-untyped-def]
    from cityos.security.audit import NO_ANCHOR

    if json_out:
        print(json.dumps(report.to_json()))
        return
    if not report.anchors:
        where = f" (none at {anchor_path})" if anchor_path is not None else ""
        err.print(f"[yellow]warning:[/yellow] {NO_ANCHOR}{where}", highlight=False)
    if report.ok:
        reached = "".join(f"; {a.source} reached (size {a.tree_size:,})" for a in report.anchors)
        console.print(
            f"audit log intact: {report.rows:,} records, {report.heads_checked:,} signed tree"
            " heads verified" + (f" (log id {report.key_id})" if report.key_id else "") + reached,
            highlight=False,
        )
        return
    count = len(report.findings) + report.more
    err.print(f"[red bold]audit log TAMPERED[/red bold]: {count} finding(s)")
    for f in report.findings:
        err.print(f"  [red]{f.kind:<9}[/red] {f.message}", highlight=False, soft_wrap=True)
    if report.more:
        err.print(f"  … and {report.more:,} more")


@app.command("export")
def audit_export(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the checkpoint here (else stdout).")
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option(
            "--since",
            exists=True,
            dir_okay=False,
            help="An earlier checkpoint: add the consistency proof from it.",
        ),
    ] = None,
    database_url: DbOption = None,
    key: AuditKeyOption = None,
) -> None:
    """Write a checkpoint (the latest signed tree head and the log's public key) for a
    third party to keep and check later ones against (verify_checkpoint in
    cityos.security.audit)."""
    from cityos.security.audit import AuditError, InvalidCheckpoint

    log, store = _audit_log(database_url, key)
    try:
        earlier = json.loads(since.read_text()) if since else None
        checkpoint = log.checkpoint(since=earlier)
    except (AuditError, InvalidCheckpoint, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        store.close()
    text = json.dumps(checkpoint, indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n")
        console.print(f"checkpoint at size {checkpoint['tree_size']:,} written to {out}")


@app.command("head")
def audit_head(
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign a tree head of the log as it is now.")
    ] = False,
    database_url: DbOption = None,
    key: AuditKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """The latest signed tree head (with --sign: a new one)."""
    from datetime import UTC, datetime

    from cityos.security.audit import AuditError, anchor_json

    log, store = _audit_log(database_url, key)
    try:
        head = log.sign_head() if sign else log.latest_head()
        size = log.size()
    except (AuditError, OSError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        store.close()
    if head is None:
        err.print("no signed tree head yet: 'cityos audit head --sign' signs one")
        raise typer.Exit(1)
    _warn_if_not_anchored(log.anchor_path, head)
    body = {**anchor_json(head), "records_now": size}  # publish it: verify --anchor reads it
    if json_out:
        print(json.dumps(body))
        return
    signed = datetime.fromtimestamp(head.timestamp / 1000, UTC).isoformat(timespec="milliseconds")
    table = Table(title="Audit log: latest signed tree head")
    table.add_column("what")
    table.add_column("value")
    for name, value in body.items():
        text = f"{value:,}" if name in ("tree_size", "records_now") else str(value)
        table.add_row(name, text + (f" ({signed})" if name == "timestamp" else ""))
    console.print(table)


def _warn_if_not_anchored(path: Path | None, head) -> None:  # type: ignore[no-untyped-def]
    """The anchor file should hold the latest head; say so when it holds another."""
    from cityos.security.audit import AuditError, InvalidCheckpoint, read_anchor

    try:
        kept = read_anchor(path) if path is not None else None
    except FileNotFoundError:
        kept = None
        err.print(f"[yellow]warning:[/yellow] no anchor file at {path} ('--sign' writes it)")
    except (InvalidCheckpoint, AuditError, OSError) as exc:
        err.print(f"[yellow]warning:[/yellow] {exc}")
        return
    if kept is not None and (kept.tree_size, kept.root_hash) != (head.tree_size, head.root_hash):
        err.print(
            f"[yellow]warning:[/yellow] the anchor {path} is at size {kept.tree_size:,}, the"
            f" latest signed head in the database at {head.tree_size:,}: run 'cityos audit verify'"
        )
