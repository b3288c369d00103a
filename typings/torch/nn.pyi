# The part of torch.nn this repository uses; see typings/README.md.
from collections.abc import Iterator

from torch import Tensor

class Module:
    def parameters(self) -> Iterator[Tensor]: ...
    def buffers(self) -> Iterator[Tensor]: ...
