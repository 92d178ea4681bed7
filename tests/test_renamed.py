"""Renames that keep the old names for a release: deployments registered before still run.

"Redo everything" is `full_refresh` everywhere (it was also `full_rebuild` and `full`), and
the ETL flow is the generic `etl` in flows/etl.py (it was `osm_notes_etl` in
flows/osm_notes.py). A deployment passes its parameters by name and names its entrypoint,
so both old spellings must still be accepted, with a warning.
"""

from __future__ import annotations

import warnings

import pytest

from dwh.core.renamed import renamed_flag
from dwh.core.settings import PROJECT_DIR


def test_the_old_flag_name_still_works_and_warns_the_new_one_does_not() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name: no warning at all
        assert (
            renamed_flag(new_value=True, old_value=None, old="full", new="full_refresh", where="export_json")
            is True
        )
        assert (
            renamed_flag(new_value=False, old_value=None, old="full", new="full_refresh", where="export_json")
            is False
        )
    with pytest.warns(
        DeprecationWarning, match="export_json: parameter 'full' is deprecated.*'full_refresh'"
    ):
        assert (
            renamed_flag(new_value=False, old_value=True, old="full", new="full_refresh", where="export_json")
            is True
        )


def test_renamed_flows_still_accept_their_old_parameter_names() -> None:
    from flows.datamarts import datamarts  # noqa: PLC0415
    from flows.export_json import export_json  # noqa: PLC0415

    assert (
        datamarts.validate_parameters({"pipeline": "osm_notes", "full_rebuild": True})["full_rebuild"] is True
    )
    assert export_json.validate_parameters({"pipeline": "osm_notes", "full": True})["full"] is True
    assert (
        export_json.validate_parameters({"pipeline": "osm_notes", "full_refresh": True})["full_refresh"]
        is True
    )


def test_generic_flows_take_no_default_pipeline() -> None:
    from flows.datamarts import datamarts  # noqa: PLC0415
    from flows.etl import etl  # noqa: PLC0415
    from flows.export_json import export_json  # noqa: PLC0415

    for flow in (etl, datamarts, export_json):
        assert "pipeline" in flow.parameters.required, flow.name
    assert etl.name == "etl"
    assert etl.flow_run_name == "etl-{pipeline}"


def test_the_old_etl_entrypoint_still_loads_the_etl_flow() -> None:
    from prefect.flows import load_flow_from_entrypoint  # noqa: PLC0415

    old = load_flow_from_entrypoint(f"{PROJECT_DIR / 'flows' / 'osm_notes.py'}:osm_notes_etl")
    new = load_flow_from_entrypoint(f"{PROJECT_DIR / 'flows' / 'etl.py'}:etl")
    assert old.name == new.name == "etl"
    assert old.parameters.required == new.parameters.required == ["pipeline"]
