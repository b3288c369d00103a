# The part of PyTorch (2.1+) this repository uses; see typings/README.md. torch ships its own types
# but is an optional extra ([torch]): this stub types the export helper whether or not it is installed.

from torch import nn as nn
from torch import onnx as onnx

class Tensor:
    def numel(self) -> int: ...
    def element_size(self) -> int: ...
