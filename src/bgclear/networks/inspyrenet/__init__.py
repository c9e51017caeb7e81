"""InSPyReNet (Kim et al., ACCV 2022), our own PyTorch code: the network (:mod:`.model`), its
Swin-B and Res2Net-50 backbones (:mod:`.swin`, :mod:`.res2net`) and the strict checkpoint
loader (:mod:`.checkpoints`). Imports nothing, so listing the package needs no PyTorch."""
