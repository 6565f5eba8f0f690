"""rules/review.py skips its pass over every node when the source spells no possible CUDA device
string (``MAY_HOLD_DEVICE_STRING``). The pass must still run, and list the string, for every way a
string can evaluate to a CUDA device without the text ``'cuda`` in the source."""

from __future__ import annotations

import pytest

from torchdevice_migrate.options import Options
from torchdevice_migrate.rules.review import MAY_HOLD_DEVICE_STRING
from torchdevice_migrate.transform import migrate_source

SPELLINGS = ["'cuda'", "'cu' 'da'", "'c' \"uda:1\"", "('cud'\n     'a')", "'\\x63uda'", "'\\143uda:0'",
             "'\\u0063uda'", "'\\N{LATIN SMALL LETTER C}uda'", "'cu\\\nda'", "f'cuda:{i}'", "'cuda:%d' % i",
             "'cuda:' + str(i)", "'''cuda'''", "r'cuda'", "U'cuda:0'"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_a_device_string_is_still_listed(spelling):
    src = f"import torch\nx = torch.zeros(2).cuda()\nlabel = {spelling}\n"
    assert MAY_HOLD_DEVICE_STRING.search(src)
    result = migrate_source(src.encode(), "case.py", Options())
    # Listed for review, or (an indexed device) rewritten by device_strings: either way not missed.
    assert any(f.code in ("TDM101", "TDM301", "TDM302") and f.line == 3 for f in result.findings), (spelling, result.findings)


@pytest.mark.parametrize("src", [
    "import torch\nx = torch.zeros(2).cuda()\nlabel = 'gpu'\n",
    'import torch\n"""Moves tensors to the GPU with torch.cuda."""\nx = torch.zeros(2).cuda()\ny = "-".join(a)\n',
    'import torch\nx = torch.zeros(2).cuda()\ny = "\\n".join(a) + "\\t"\n',  # escapes that spell no letter of cuda
])
def test_a_file_without_one_lists_nothing(src):
    assert not MAY_HOLD_DEVICE_STRING.search(src)
    result = migrate_source(src.encode(), "case.py", Options())
    assert result.new != src.encode()  # the file is ported; only the review pass is skipped
    assert not any(f.code in ("TDM301", "TDM302") for f in result.findings)
