"""`vat.sweep.manifest`: the sweep manifest loses no update from many concurrent writers."""

import threading

from vat.sweep.manifest import read_manifest, update_manifest


def test_manifest_updates_from_many_writers_lose_nothing(tmp_path):
    def work(i):
        update_manifest(tmp_path, f"cell{i}", status="running")
        update_manifest(tmp_path, f"cell{i}", status="done", seconds=i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cells = read_manifest(tmp_path)["cells"]
    assert len(cells) == 16 and all(c["status"] == "done" for c in cells.values())
    assert cells["cell7"]["seconds"] == 7
