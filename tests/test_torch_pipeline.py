"""The learned backends wired into the engine: registry, Session, refiner names, doctor."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install 'bgclear[torch]')")

from bgclear.errors import ModelError, ModelNotFoundError  # noqa: E402
from bgclear.stages.trimap import UNKNOWN  # noqa: E402


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BGCLEAR_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """A tiny Swin InSPyReNet state dict and a tiny ViTMatte folder, random weights."""
    transformers = pytest.importorskip("transformers")
    from bgclear.networks.inspyrenet.model import InSPyReNet
    from bgclear.networks.inspyrenet.swin import SwinTransformer

    root = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    backbone = SwinTransformer(16, (1, 1, 1, 1), (1, 1, 2, 2), 4)
    torch.save(InSPyReNet(backbone, backbone.out_channels, 8, (64, 64)).state_dict(), root / "ckpt_fast.pth")
    vit = transformers.VitDetConfig(num_channels=4, image_size=64, pretrain_image_size=64, patch_size=16,
                                    hidden_size=16, num_attention_heads=1, num_hidden_layers=2, window_size=2,
                                    window_block_indices=[0], out_features=["stage2"],
                                    use_relative_position_embeddings=True)
    config = transformers.VitMatteConfig(backbone_config=vit, hidden_size=16, convstream_hidden_sizes=[4, 8, 8],
                                         fusion_hidden_sizes=[16, 8, 8, 4])
    transformers.VitMatteForImageMatting(config).save_pretrained(root / "vitmatte")
    return root / "ckpt_fast.pth", root / "vitmatte"


def test_full_pipeline_with_inspyrenet_and_vitmatte(home, tiny_checkpoints):
    from bgclear import Session
    from bgclear.models.local import add_local_model

    ckpt, folder = tiny_checkpoints
    add_local_model("inspyrenet-fast", ckpt, base_size=64)
    add_local_model("vitmatte", folder)
    yy, xx = np.mgrid[:240, :320]
    photo = np.where((np.hypot(yy - 120, xx - 160) < 70)[..., None], [200, 40, 30], [20, 60, 200]).astype(np.uint8)
    session = Session(segmenter="inspyrenet-fast", refiner="vitmatte", device="cpu")
    cut = session.remove(photo)
    assert cut.alpha.shape == (240, 320) and cut.alpha.dtype == np.float32
    assert 0 <= cut.alpha.min() and cut.alpha.max() <= 1
    known = cut.trimap != UNKNOWN
    np.testing.assert_array_equal(cut.alpha[known], (cut.trimap[known] == 255).astype(np.float32))
    assert session.refiner.name == "vitmatte" and session.segmenter.name == "inspyrenet-fast"


def test_vitmatte_folder_or_config_path_registers(home, tiny_checkpoints):
    from bgclear.models.registry import get_model
    from bgclear.models.local import add_local_model

    _, folder = tiny_checkpoints
    (spec,) = add_local_model("my-matte", folder / "config.json")
    assert spec.kind == "refiner" and spec.backend == "vitmatte" and len(spec.sha256) == 64
    assert get_model("my-matte").extra["path"].endswith("model.safetensors")
    from bgclear.backends import make_refiner, refiner_names

    assert "my-matte" in refiner_names() and "vitmatte" in refiner_names()
    assert make_refiner("my-matte", device="cpu").name == "my-matte"
    with pytest.raises(ModelError, match="not a ViTMatte checkpoint folder"):
        add_local_model("nope", folder.parent, "vitmatte")


def test_missing_weights_name_the_command(home):
    from bgclear.backends import make_refiner

    with pytest.raises(ModelNotFoundError, match="bgclear models add vitmatte PATH"):
        make_refiner("vitmatte", device="cpu")


def test_doctor_report_describes_torch_and_models(home):
    from bgclear.doctor import doctor_report

    report = doctor_report()
    assert report["torch"]["installed"] and report["torch"]["version"] == torch.__version__
    assert report["torch"]["chosen_device"]
    names = {m["name"]: m for m in report["models"]}
    assert names["inspyrenet"]["needs_torch"] and not names["inspyrenet"]["installed"]
    assert "isnet" in names
    if not torch.cuda.is_available():
        bad = doctor_report("cuda")
        assert bad["torch"]["chosen_device"] is None and "device_error" in bad["torch"]


def test_without_torch_the_error_says_how_to_install(tmp_path):
    """Simulated install without torch: a ModelError naming the extra, never an ImportError."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from bgclear.backends import make_segmenter, refiner_names\n"
        "from bgclear.doctor import doctor_report\n"
        "assert 'vitmatte' in refiner_names() and not doctor_report()['torch']['installed']\n"
        "from bgclear.errors import ModelError\n"
        "try:\n    make_segmenter('inspyrenet')\nexcept ModelError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"BGCLEAR_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "pip install 'bgclear[torch]'" in out.stdout


def test_reduced_precision_guard_reruns_in_fp32_once_it_sees_non_finite_values(caplog):
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from bgclear.engines.torch import run_guarded

    owner = SimpleNamespace(device=torch.device("cpu"), half=True)
    calls = []

    def forward():
        calls.append(owner.half)
        return torch.tensor([float("nan"), 1.0]) if owner.half else torch.tensor([0.5, 1.0])

    with caplog.at_level("WARNING", logger="bgclear"):
        out = run_guarded(owner, forward, "segmenter test")
    assert out.tolist() == [0.5, 1.0] and calls == [True, False] and owner.half is False
    assert "non-finite" in caplog.text
    calls.clear()
    assert run_guarded(owner, forward, "segmenter test").tolist() == [0.5, 1.0] and calls == [False]
