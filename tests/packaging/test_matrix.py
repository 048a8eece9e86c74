"""The supported Pythons are one list: pyproject's classifiers, tox's envlist and the CI
matrix name the same versions, and the CI workflow is a valid GitHub Actions workflow."""

from __future__ import annotations

import configparser
import importlib.resources
import json
import re
import tomllib
from typing import Any

import jsonschema
import pytest
import yaml

from tests.packaging.support import REPO

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def _classified() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: "
    return {c.removeprefix(prefix) for c in project["classifiers"] if re.fullmatch(
        re.escape(prefix) + r"3\.\d+", c)}  # fmt: skip


def _tox_envs() -> set[str]:
    tox = configparser.ConfigParser()
    tox.read(REPO / "tox.ini")
    envs = [e.strip() for e in tox["tox"]["envlist"].split(",")]
    return {f"{e[2]}.{e[3:]}" for e in envs if re.fullmatch(r"py3\d+", e)}


def _workflow() -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    loaded["on"] = loaded.pop(True)  # YAML 1.1 reads the key `on` as true; GitHub does not
    return loaded


def test_classifiers_tox_and_ci_name_the_same_pythons() -> None:
    ci = set(_workflow()["jobs"]["tests"]["strategy"]["matrix"]["python-version"])
    assert _classified() == {"3.11", "3.12", "3.13"}
    assert _tox_envs() == _classified()
    assert ci == _classified()


def test_requires_python_is_the_oldest_in_the_matrix() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    oldest = min(_classified(), key=lambda v: tuple(map(int, v.split("."))))
    assert project["requires-python"] == f">={oldest}"


def test_the_workflow_is_a_valid_github_actions_workflow() -> None:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "github-workflows.json"
    )
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(_workflow(), schema)
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        jsonschema.validate({"on": "push", "jobs": {"x": {"steps": "no"}}}, schema)
