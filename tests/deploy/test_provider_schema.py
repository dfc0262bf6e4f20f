"""``terraform/`` against the real provider schemas, offline (``tests/support/tfschema.py``).

The schemas are those of hashicorp/google 6.50.0, time 0.13.1 and archive 2.7.1 as shipped in
the pinned PyPI packages ``cdktf-cdktf-provider-google==16.12.1`` (``-time``/``-archive``
11.0.1), read by ``scripts/provider_schema.py`` (``make provider-schema`` caches them in
``.provider-schema/``).  The negative controls plant one error each into a copy of the real
configuration and check that it is caught: the checks that passed the planted copy of issue
#14 (``terraform fmt``, checkov, the python-hcl2 tests) catch none of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tfschema

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"


@pytest.fixture(scope="module")
def schemas() -> dict[str, tfschema.Schema]:
    try:
        return tfschema.load_schemas()
    except tfschema.SchemaUnavailableError as exc:
        pytest.skip(f"provider schema package unavailable (no PyPI?): {exc}")


def configurations() -> list[Path]:
    """Every folder of ``terraform/`` holding ``.tf`` files (a root or a module)."""
    return sorted({p.parent for p in TF.rglob("*.tf") if ".terraform" not in p.parts})


def texts(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.tf"))}


@pytest.mark.parametrize("folder", configurations(), ids=lambda p: str(p.relative_to(TF)))
def test_configuration_matches_the_provider_schema(folder: Path, schemas) -> None:
    errors = tfschema.validate_dir(folder, schemas)
    assert not errors, "\n".join(errors)


def test_schema_is_the_one_of_the_pinned_packages(schemas) -> None:
    google = schemas["google"].data
    assert (google["provider"], google["version"]) == ("hashicorp/google", "6.50.0")
    assert google["package"] == "cdktf-cdktf-provider-google==16.12.1"
    assert len(google["resource"]) > 1000  # the whole provider, not a hand-written subset
    for rtype in ("google_cloudfunctions2_function", "google_monitoring_alert_policy",
                  "google_monitoring_dashboard", "google_storage_bucket_iam_member"):
        assert rtype in google["resource"]
    assert "time_sleep" in schemas["time"].data["resource"]
    assert "archive_file" in schemas["archive"].data["data"]


def test_providers_are_pinned_to_the_checked_schema(schemas) -> None:
    """The provider that applies is the one whose schema is checked: every configuration that
    requires a provider pins it to exactly that version."""
    pinned = 0
    for folder in configurations():
        for name, spec in tfschema.required_providers(folder).items():
            assert name in schemas, f"{folder}: no schema package for provider {name!r}"
            schema = schemas[name].data
            assert spec["source"] == schema["provider"], (folder, name)
            assert spec["version"] == schema["version"], (
                f"{folder.relative_to(TF)}: {name} = {spec['version']!r}, but the checked "
                f"schema is {schema['version']}: pin `version = \"{schema['version']}\"`")
            pinned += 1
    assert pinned


# --------------------------------------------------------------------------- negative controls
def _folder_with(name: str) -> Path:
    for folder in configurations():
        if (folder / name).exists():
            return folder
    raise AssertionError(f"no configuration has {name}")


def _plant(file: str, old: str, new: str) -> dict[str, str]:
    folder = _folder_with(file)
    files = texts(folder)
    assert old in files[file], f"{file} no longer contains {old!r}: update the control"
    files[file] = files[file].replace(old, new, 1)
    return files


CONTROLS = {
    # name: (file, text, replacement, expected message fragment)
    "misspelled attribute": (
        "storage.tf", "uniform_bucket_level_access", "uniform_bucket_level_acess",
        "unsupported argument 'uniform_bucket_level_acess' in StorageBucketConfig "
        "(did you mean 'uniform_bucket_level_access'?)"),
    "unknown attribute": (
        "storage.tf", "force_destroy ", "auto_delete_objects = true\n  force_destroy ",
        "unsupported argument 'auto_delete_objects'"),
    "block used as attribute": (
        "storage.tf", "versioning {", "versioning = {",
        "'versioning' is a block: write `versioning { ... }`"),
    "attribute used as block": (
        "storage.tf", "labels   = local.labels", "labels {\n    app = \"irt\"\n  }",
        "'labels' is an attribute"),
    "missing required argument": (
        "monitoring.tf", 'combiner              = "OR"', "",
        "missing required argument 'combiner'"),
    "invalid enum: comparison": (
        "monitoring.tf", '"COMPARISON_GT"', '"COMPARISON_GREATER"',
        "'COMPARISON_GREATER' is not one of"),
    "invalid enum: aligner": (
        "monitoring.tf", '"ALIGN_SUM"', '"ALIGN_TOTAL"', "'ALIGN_TOTAL' is not one of"),
    "invalid enum: missing data": (
        "monitoring.tf", '"EVALUATION_MISSING_DATA_INACTIVE"', '"EVALUATION_MISSING_DATA_OFF"',
        "'EVALUATION_MISSING_DATA_OFF' is not one of"),
    "invalid enum: ingress": (
        "functions.tf", '"ALLOW_INTERNAL_ONLY"', '"INTERNAL_ONLY"',
        "'INTERNAL_ONLY' is not one of ['ALLOW_ALL', 'ALLOW_INTERNAL_ONLY', "
        "'ALLOW_INTERNAL_AND_GCLB']"),
    "unknown resource type": (
        "storage.tf", 'resource "google_storage_bucket" "sources"',
        'resource "google_storage_buckets" "sources"',
        "has no resource type 'google_storage_buckets' (did you mean 'google_storage_bucket'?)"),
    "unknown exported attribute": (
        "functions.tf", ".output_sha256}", ".output_sha265}",
        "archive_file exports no attribute 'output_sha265'"),
}


@pytest.mark.parametrize("control", list(CONTROLS))
def test_negative_control_is_caught(control: str, schemas) -> None:
    file, old, new, expected = CONTROLS[control]
    clean = texts(_folder_with(file))
    assert not tfschema.validate_texts(clean, schemas)
    errors = tfschema.validate_texts(_plant(file, old, new), schemas)
    assert any(expected in e for e in errors), f"{control} not caught: {errors}"
