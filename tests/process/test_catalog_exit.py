"""A wrong catalog file at CATALOG_PATH stops `python -m bot` as a bad setting does: exit 2, one
line naming the file, the model and the field, no traceback (what is wrong in a file, each
kind: tests/unit/test_catalog_file.py)."""

from __future__ import annotations

from pathlib import Path

from bot.catalog import SHIPPED
from tests.process.test_config_exit import GOOD, run_bot


def test_a_wrong_catalog_file_stops_the_bot_with_one_line(tmp_path: Path) -> None:
    catalog = tmp_path / "operator.toml"
    shipped = SHIPPED.read_text(encoding="utf-8")
    kling = shipped.index('id = "kling"\n')  # Kling's price, the first after its id
    assert shipped.index("price = 150\n", kling) - kling < 500
    catalog.write_text(shipped[:kling] + shipped[kling:].replace("price = 150\n", 'price = "150"\n', 1),
                       encoding="utf-8")
    code, output = run_bot(tmp_path, **GOOD, CATALOG_PATH=str(catalog))
    assert code == 2, output
    assert output.strip() == (f'Catalog error: {catalog}, model "kling", field price: '
                              "Input should be a valid integer"), output
