"""Input streams declared in a method's YAML (mercore.streams): the requests the ported plugins
make are pinned, since the feature cache and every result depend on them exactly, and a bad
``features`` section is refused in one line naming the key."""
from __future__ import annotations

import pytest

from mercore import FeatureRequest, RunSpec
from mercore.config import ConfigError
from mercore.plugins import load_registry
from mercore.runner import run_config
from mercore.streams import declared_requests

CASES = [  # (method, variant, profile, dataset, the requests)
    ("ststnet", None, "quick", "synthetic",
     {"flow": FeatureRequest("flow_uvs", {"size": 28, "backend": "tvl1", "normalize": "minmax", "align": "none"})}),
    ("ststnet", None, "paper", "synthetic",
     {"flow": FeatureRequest("flow_uvs", {"size": 28, "backend": "tvl1", "normalize": "minmax", "align": "none",
                                          "source_size": 128, "pool": "maps"})}),
    ("ststnet", None, "quick", "megc2019-flow", {"flow": FeatureRequest("release_flow", {"size": 28})}),
    ("htnet", None, "paper", "megc2019-flow",
     {"flow": FeatureRequest("roi_flow", {"layout": "htnet4", "source": "release", "source_size": 28, "size": 28,
                                          "landmarks": "auto", "backend": "tvl1"})}),
    ("rrmfnet", None, "quick", "synthetic",
     {"flow": FeatureRequest("flow_uvs", {"size": 32, "backend": "tvl1", "align": "none", "source_size": 128}),
      "apex": FeatureRequest("apex_frame", {"size": 32, "align": "none"})}),
]


@pytest.mark.parametrize(("name", "variant", "profile", "dataset", "expected"), CASES)
def test_the_requests_of_the_ported_plugins_are_pinned(name, variant, profile, dataset, expected):
    registry = load_registry(only=[name])
    method = registry.method(name)
    requests = method.features(run_config(RunSpec(method, dataset=dataset, variant=variant, profile=profile), registry))
    assert requests == expected
    assert {k: type(v) for k, v in requests["flow"].params.items()} == {
        k: type(v) for k, v in expected["flow"].params.items()}  # 28 == 28.0, but not in the cache key


SECTION = {"source": "clips", "size": 28, "align": "dlib",
           "streams": {"flow": {"clips": {"extractor": "flow_uvs", "params": {"pool": None, "size": 56}},
                                "release": {"extractor": "release_flow", "params": {}}}}}


def test_size_goes_to_every_stream_align_to_clips_only_and_null_params_are_left_out():
    assert declared_requests(SECTION) == {"flow": FeatureRequest("flow_uvs", {"size": 56, "align": "dlib"})}
    release = declared_requests({**SECTION, "source": "release", "size": None})
    assert release == {"flow": FeatureRequest("release_flow", {})}


@pytest.mark.parametrize(("change", "message"), [
    ({"source": "video"}, "config key 'features.source': 'video' is not allowed; expected one of clips, release"),
    ({"size": 0}, "config key 'features.size': 0 is not allowed"),
    ({"backend": "tvl1"}, "unknown features option(s) ['backend']"),
    ({"streams": {"flow": {"clips": {"extractor": "flow_uvs"}}}}, "'features.streams.flow.clips' lacks 'params'"),
    ({"streams": {"flow": {"release": {"extractor": "release_flow", "params": {}}}}},
     "stream 'flow' has no 'clips' entry (features.source picks it); it declares: release"),
])
def test_a_bad_section_is_refused_naming_the_key(change, message):
    with pytest.raises(ConfigError) as info:
        declared_requests({**SECTION, **change})
    assert message in str(info.value) and "\n" not in str(info.value)
