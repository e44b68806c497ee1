"""The accelerator/model catalog: coverage, lookups and their errors, KV capacity, load time."""

from __future__ import annotations

import copy

import pytest

from simulator.perf.catalog import (
    GIB,
    CatalogError,
    build_catalog,
    kv_capacity_blocks,
    load_catalog,
    read_data_file,
)

REQUIRED_ACCELERATORS = {"h100", "h200", "a100", "l40s", "mi300x", "gaudi3", "tpu-v5e"}
REQUIRED_MODELS = {"llama-3-8b", "llama-3-70b", "llama-2-70b", "deepseek-v3"}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_covers_the_required_accelerators_and_models(catalog):
    assert set(catalog.accelerators) >= REQUIRED_ACCELERATORS
    assert set(catalog.models) >= REQUIRED_MODELS
    for acc in REQUIRED_ACCELERATORS:
        assert any(p.accelerator.name == acc for p in catalog.profiles), acc


def test_calibrated_profiles_are_not_derived(catalog):
    for hw in ("a100", "h100"):
        for tp in (2, 4, 8):
            assert not catalog.profile(hw, "llama-2-70b", tp).derived
    assert not catalog.profile("h100", "llama-3-8b", 1).derived
    assert catalog.profile("h200", "llama-3-8b", 1).derived
    # Llama-3-70B: fitted to Argonne's vLLM runs where Argonne ran it (H100 TP4, MI300X 1-8)
    assert not catalog.profile("h100", "llama-3-70b", 4).derived
    for tp in (1, 2, 4, 8):
        assert not catalog.profile("mi300x", "llama-3-70b", tp).derived
    for hw, tp in (("h100", 2), ("h100", 8), ("a100", 4), ("h200", 4), ("gaudi3", 8)):
        assert catalog.profile(hw, "llama-3-70b", tp).derived, (hw, tp)


def test_every_number_has_a_source(catalog):
    for a in catalog.accelerators.values():
        assert a.source, a.name
        assert a.price_source, a.name
        assert a.price_per_gpu_hour > 0
    for m in catalog.models.values():
        assert m.source, m.name
    for p in catalog.profiles:
        assert len(p.source) > 40, (p.accelerator.name, p.model.name, p.gpus)
        if p.derived:
            assert p.source.startswith("derived"), p.source


def test_wide_ep_profile(catalog):
    p = catalog.profile("h200", "deepseek-v3", 16)
    assert p.parallelism == "ep"
    assert p.model.moe
    assert p.derived
    assert "llm-d" in p.source


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("b300", "llama-3-8b", 1), "valid: a100, gaudi3, h100"),
        (("h100", "llama-4", 1), "valid: deepseek-v3, llama-2-70b"),
        (("h100", "llama-3-8b", 3), "valid GPU counts: 1, 2, 4, 8"),
        (("a100", "llama-3-70b", 1), "valid GPU counts: 2, 4, 8"),
        (("tpu-v5e", "llama-3-70b", 8), "accelerators with a profile for llama-3-70b: a100"),
    ],
)
def test_unknown_combinations_name_the_valid_choices(catalog, args, fragment):
    with pytest.raises(CatalogError) as info:
        catalog.profile(*args)
    assert fragment in str(info.value)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ValueError)


def test_lookup_is_case_insensitive(catalog):
    assert catalog.profile("H100", "Llama-3-8B", 1) is catalog.profile("h100", "llama-3-8b", 1)


def test_kv_capacity_worked_example(catalog):
    p = catalog.profile("h100", "llama-3-8b", 1)
    assert p.model.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131_072
    # 72 GiB usable − 14.96 GiB weights − (1 + 1.15) GiB reserve = 54.89 GiB; 2 MiB per block
    free = 80 * 0.9 * GIB - 8.03e9 * 2 - (1 * GIB + 8192 * (3 * 14336 + 4 * 4096) * 2)
    free -= 2 * 256 * 128256 * 4
    assert p.kv_blocks == int(free // (16 * 131_072)) == 28_104


def test_kv_capacity_grows_with_gpus_and_memory(catalog):
    l3 = catalog.models["llama-3-70b"]
    h100, h200 = catalog.accelerators["h100"], catalog.accelerators["h200"]
    assert kv_capacity_blocks(h100, l3, 2) < kv_capacity_blocks(h100, l3, 4)
    assert kv_capacity_blocks(h100, l3, 4) < kv_capacity_blocks(h200, l3, 4)
    assert kv_capacity_blocks(h100, l3, 1) == 0  # 141 GB of weights on one 80 GiB GPU


def test_mla_kv_bytes(catalog):
    assert catalog.models["deepseek-v3"].kv_bytes_per_token == 61 * 576 * 2 == 70_272


def test_load_time_worked_example(catalog):
    p = catalog.profile("h100", "llama-3-8b", 1)
    assert p.load_time_s() == pytest.approx(16.06e9 / 2e9 + 45)
    assert p.load_time_s(load_gbps=4.0, container_start_s=10.0) == pytest.approx(16.06e9 / 4e9 + 10)
    with pytest.raises(ValueError, match="load_gbps"):
        p.load_time_s(load_gbps=0)


def test_replica_price(catalog):
    p = catalog.profile("h100", "llama-3-70b", 4)
    assert p.price_per_hour == pytest.approx(4 * p.accelerator.price_per_gpu_hour)


def _docs():
    return (
        read_data_file("accelerators.yaml"),
        read_data_file("models.yaml"),
        read_data_file("profiles.yaml"),
    )


def test_build_catalog_rejects_unknown_keys():
    accs, models, profiles = copy.deepcopy(_docs())
    accs[0]["tdp_watts"] = 700
    with pytest.raises(CatalogError, match="unknown keys tdp_watts"):
        build_catalog(accs, models, profiles)


def test_build_catalog_rejects_missing_keys():
    accs, models, profiles = copy.deepcopy(_docs())
    del models[0]["layers"]
    with pytest.raises(CatalogError, match="missing layers"):
        build_catalog(accs, models, profiles)


def test_build_catalog_rejects_profiles_that_cannot_hold_a_sequence():
    accs, models, profiles = copy.deepcopy(_docs())
    entry = next(p for p in profiles if p["model"] == "llama-3-70b" and p["gpus"] == 2)
    entry["accelerator"] = "l40s"
    with pytest.raises(CatalogError, match="cannot hold one 8192-token sequence"):
        build_catalog(accs, models, profiles)


def test_build_catalog_rejects_negative_coefficients():
    accs, models, profiles = copy.deepcopy(_docs())
    profiles[0]["step"]["c0_s"] = -1.0
    with pytest.raises(ValueError, match="c0_s"):
        build_catalog(accs, models, profiles)
