"""The atomic storage underneath: versions, backups and the read cache."""

from __future__ import annotations

from pathlib import Path

from tf_console.store.storage import FileCache, TableFile, file_signature


def _table(path: Path, cache: FileCache) -> TableFile:
    return TableFile(path, "t", cache=cache, bounded_cache=False, durable=True)


def test_quick_same_size_versions_get_distinct_signatures(tmp_path: Path) -> None:
    writer = _table(tmp_path / "f.json", FileCache())
    reader = _table(tmp_path / "f.json", FileCache())
    signatures = []
    for value in range(10, 60):  # same size each time, faster than the file system clock ticks
        writer.replace({1: {"v": value}})
        signatures.append(file_signature(writer.path))
        assert reader.get(1) == {"v": value}, "a reader must never be served a cached older version"
    mtimes = [s[1] for s in signatures if s is not None]
    assert mtimes == sorted(mtimes) and len(set(mtimes)) == len(mtimes)


def test_backup_holds_the_previous_version(tmp_path: Path) -> None:
    table = _table(tmp_path / "f.json", FileCache())
    table.replace({1: {"v": 1}})
    assert not table.storage.backup.exists()
    table.replace({1: {"v": 2}})
    table.replace({2: {"v": 3}})
    backup = _table(table.storage.backup, FileCache())
    assert backup.documents() == {"1": {"v": 2}}
    assert table.documents() == {"1": {"v": 2}, "2": {"v": 3}}
    table.replace({}, [1])
    assert table.documents() == {"2": {"v": 3}}
    table.replace({3: {"v": 4}}, refresh_backup=True)
    assert _table(table.storage.backup, FileCache()).documents() == table.documents()


def test_a_failed_batch_writes_nothing(tmp_path: Path) -> None:
    table = _table(tmp_path / "f.json", FileCache())
    table.replace({1: {"v": 1}})
    before = table.path.read_bytes()
    try:
        with table.storage.batch():
            table.table.remove(doc_ids=[1])
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert table.path.read_bytes() == before and table.documents() == {"1": {"v": 1}}


def test_bounded_cache_keeps_only_the_latest_files(tmp_path: Path) -> None:
    cache = FileCache(max_bounded=2)
    tables = [
        TableFile(tmp_path / f"{i}.json", "t", cache=cache, bounded_cache=True, durable=False)
        for i in range(4)
    ]
    for index, table in enumerate(tables):
        table.replace({1: {"v": index}})
    signature = file_signature(tables[0].path)
    assert signature is not None and cache.get(tables[0].path, signature) is None
    last = file_signature(tables[3].path)
    assert last is not None and cache.get(tables[3].path, last) is not None
    assert [t.get(1) for t in tables] == [{"v": i} for i in range(4)]
