"""Pushing the export folder to the Hugging Face Hub as a dataset repository.

The token is whatever huggingface_hub finds (HF_TOKEN, else `hf auth login`); it is never
read into, printed by or logged by this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pretrain_mix.errors import PretrainMixError

log = logging.getLogger(__name__)

# Errors raised by these libraries while talking to the Hub are network failures.
_NETWORK_MODULES = {"httpx", "httpx2", "httpcore", "requests", "urllib3", "socket", "ssl"}


# Hidden files (Snakemake's .snakemake_timestamp in a directory output) are not data.
IGNORE_PATTERNS = [".*", "**/.*"]


class HubError(PretrainMixError):
    """The export cannot be pushed: no repo id, no token, no network, or the Hub said no."""


def list_files(folder: str | Path) -> list[tuple[str, int]]:
    """(path relative to the folder, size in bytes) of every file but hidden ones, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise HubError(f"{root}: no export folder; build it with: snakemake --cores 2 export")
    return sorted(
        (path.relative_to(root).as_posix(), path.stat().st_size)
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def describe_listing(files: list[tuple[str, int]], repo_id: str, private: bool) -> str:
    total = sum(size for _, size in files)
    visibility = "private" if private else "public"
    lines = [
        f"hub.dry_run: would upload {len(files)} files ({_size(total)}) to the {visibility}"
        f" dataset repo {repo_id}; nothing uploaded"
    ]
    lines += [f"  {size:>12,}  {path}" for path, size in files]
    return "\n".join(lines)


def _endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def describe_hub_error(exc: BaseException, repo_id: str) -> str | None:
    """One line for a failure while pushing, or None when it is not a Hub or network error."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return (
            f"cannot push to {repo_id}: HF_HUB_OFFLINE is set; unset it (and check the network)"
            " to upload"
        )
    if isinstance(exc, HfHubHTTPError):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status == 401:
            return (
                f"the Hub rejected the token while pushing to {repo_id} (401); set HF_TOKEN to a"
                " valid token with write access"
            )
        if status == 403:
            return (
                f"no write access to {repo_id} (403); use a token with write access to"
                f" '{repo_id.split('/')[0]}' or another hub.repo_id"
            )
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the Hub refused the push to {repo_id} ({status}: {first})"
    module = type(exc).__module__.split(".")[0]
    if isinstance(exc, ConnectionError | TimeoutError) or module in _NETWORK_MODULES:
        return (
            f"cannot reach the Hugging Face Hub at {_endpoint()} to push {repo_id}"
            f" ({type(exc).__name__}); check the network or proxy, then run: snakemake push"
        )
    return None


def check_visibility(repo_id: str, actual: bool | None, private: bool) -> None:
    """Refuse to push when the repo's visibility is not `hub.private`'s: create_repo leaves an
    existing repo as it is, so a private mixture could otherwise land in a public repo."""
    if actual is None:
        raise HubError(
            f"the Hub did not say whether {repo_id} is private; check its visibility and token"
            " access, then push again; nothing uploaded"
        )
    if actual != private:
        shown = "private" if actual else "public"
        raise HubError(
            f"{repo_id} is {shown} on the Hub but hub.private is {str(private).lower()}: change"
            f" the repo's visibility on the Hub or set hub.private: {str(actual).lower()};"
            " nothing uploaded"
        )


def push_folder(
    folder: str | Path, repo_id: str, private: bool, revision: str | None, commit_message: str
) -> str:
    """Create the dataset repo if needed, check that its visibility is `private`, and upload
    the folder in one commit; returns its URL.

    Shards of an earlier push that this one does not contain are deleted in the same commit,
    so a config's `data/<id>/*.parquet` never mixes two exports.
    """
    from huggingface_hub import HfApi, get_token

    if get_token() is None:
        raise HubError(
            f"no Hugging Face token to push {repo_id}: set HF_TOKEN to a token with write"
            " access (or run `hf auth login`)"
        )
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        check_visibility(repo_id, api.repo_info(repo_id, repo_type="dataset").private, private)
        if revision:
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            commit_message=commit_message,
            delete_patterns=["data/**"],
            ignore_patterns=IGNORE_PATTERNS,
        )
    except Exception as exc:
        message = describe_hub_error(exc, repo_id)
        if message is None:
            raise
        raise HubError(message) from None
    return str(getattr(commit, "commit_url", commit))


def run_push_job(folder: str | Path, hub: Mapping[str, Any]) -> dict[str, Any]:
    """What the `push` rule does: upload, or with hub.dry_run list what would be uploaded."""
    repo_id = hub.get("repo_id")
    if not repo_id:
        raise HubError(
            "hub.repo_id is not set; add `hub: {repo_id: <user-or-org>/<name>}` to the config"
        )
    files = list_files(folder)
    private = bool(hub.get("private", True))
    if hub.get("dry_run"):
        listing = describe_listing(files, repo_id, private)
        print(listing, flush=True)
        log.info("%s", listing)
        return {"repo_id": repo_id, "dry_run": True, "files": files}
    log.info("pushing %d files from %s to %s (private: %s)", len(files), folder, repo_id, private)
    url = push_folder(
        folder,
        repo_id,
        private,
        hub.get("revision"),
        hub.get("commit_message") or "Upload mixture with pretrain-mix",
    )
    message = f"pushed {len(files)} files to {repo_id}: {url}"
    print(message, flush=True)
    log.info("%s", message)
    return {"repo_id": repo_id, "dry_run": False, "files": files, "url": url}
