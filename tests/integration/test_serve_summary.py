"""`jitr serve`'s summary at its stop, with products: the line that counts the run's decisions, and under it a table of
them by product (one service per process, so this runs apart from test_serve_products' service)."""

from __future__ import annotations

from pathlib import Path

from jitr_tools.endpoint.serve import ServeOptions, Service
from jitr_tools.rehearsing import local_hooks
from jitr_tools.rehearsing.simulate_products import HOOK_FUNCTION, make_product_fleet
from tests.integration.test_serve_products import HOOK, decided


def test_at_the_stop_the_summary_tables_the_runs_decisions_by_product(tmp_path: Path) -> None:
    # Given a service (the summary is said when it stops) deciding a gateway, two meters (one refused) and a sensor
    # held until its manifest is imported
    (tmp_path / "products").mkdir()
    products = make_product_fleet(9, tmp_path / "products")
    said: list[str] = []
    (tmp_path / "allow_list.py").write_text(HOOK)
    name, where = local_hooks.parse(f"{HOOK_FUNCTION}={tmp_path / 'allow_list.py'}:handler")
    options = ServeOptions(folder=tmp_path, mqtt_port=0, api_port=0, hooks={name: local_hooks.load(where)})
    with Service(products.config, options, say=said.append) as running:
        for device_name in ("gw-00003", "m-00002", "sensor-m00003", "sensor-00002"):
            decided(running, products, device_name)
        said.clear()
    # Then the summary's line counts them, and a table under it splits them by product, an outcome a column
    line = next((i for i, text in enumerate(said) if text.startswith("jitr serve: decided")), None)
    assert line is not None, said
    assert said[line].startswith("jitr serve: decided 4 certificates this run (HELD 1, PROVISIONED 2, REJECTED 1)")
    assert "by product" not in said[line]
    table = [text.split() for text in said[line + 1 : line + 5]]
    assert table == [
        ["by", "product", "HELD", "PROVISIONED", "REJECTED"],
        ["gateway", "0", "1", "0"],
        ["meter", "0", "1", "1"],
        ["sensor", "1", "0", "0"],
    ]
