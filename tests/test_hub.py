"""Pushing to the Hub, against a stand-in for huggingface_hub.HfApi (no network)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import huggingface_hub
import pytest

from pretrain_mix.hub import HubError, run_push_job


class FakeHub:
    """HfApi's calls that push_folder makes; the repo exists with visibility `existing`."""

    def __init__(self, existing: bool | None):
        self.existing = existing
        self.calls: list[str] = []

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append("create_repo")

    def repo_info(self, repo_id: str, **kwargs: Any) -> SimpleNamespace:
        self.calls.append("repo_info")
        return SimpleNamespace(id=repo_id, private=self.existing)

    def create_branch(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append("create_branch")

    def upload_folder(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append("upload_folder")
        return SimpleNamespace(commit_url=f"https://hub.example/{kwargs['repo_id']}/commit/1")


def export_folder(tmp_path: Path) -> Path:
    shard = tmp_path / "export" / "data" / "web" / "train-00000-of-00001.parquet"
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"x" * 10)
    return tmp_path / "export"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    def install(existing: bool | None) -> FakeHub:
        fake = FakeHub(existing)
        monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_token")
        monkeypatch.setattr(huggingface_hub, "HfApi", lambda: fake)
        return fake

    return install


@pytest.mark.parametrize(
    ("existing", "private", "message"),
    [
        (False, True, "me/mix is public on the Hub but hub.private is true"),
        (True, False, "me/mix is private on the Hub but hub.private is false"),
        (None, True, "the Hub did not say whether me/mix is private"),
    ],
)
def test_push_refuses_an_existing_repo_whose_visibility_differs_from_the_setting(
    tmp_path: Path, hub, existing: bool | None, private: bool, message: str
) -> None:
    fake = hub(existing)
    with pytest.raises(HubError, match=f"^{message}") as caught:
        run_push_job(export_folder(tmp_path), {"repo_id": "me/mix", "private": private})
    assert "\n" not in str(caught.value) and "nothing uploaded" in str(caught.value)
    assert fake.calls == ["create_repo", "repo_info"]


@pytest.mark.parametrize("private", [True, False])
def test_push_uploads_when_the_repo_has_the_asked_visibility(
    tmp_path: Path, hub, private: bool
) -> None:
    fake = hub(private)
    done = run_push_job(export_folder(tmp_path), {"repo_id": "me/mix", "private": private})
    assert done["url"] == "https://hub.example/me/mix/commit/1"
    assert fake.calls == ["create_repo", "repo_info", "upload_folder"]
