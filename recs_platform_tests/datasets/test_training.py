import datetime as dt
import json

import pandas as pd
import pandera.errors
import pytest

from recs_platform.datasets.training import (
    DatasetStore,
    TrainingDatasetNotFound,
    TrainingSessionsSchema,
    TrainingWindow,
    build_training_dataset,
    load_training_dataset,
    read_training_dataset,
    save_training_dataset,
    write_training_dataset,
)

NOV = [dt.date(2026, 11, day) for day in range(1, 8)]


def sessions(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["session_id", "session_date", "items"])


SMALL = sessions(
    ("s0", NOV[0], ["a", "b"]),  # before the window
    ("s1", NOV[1], ["a", "b"]),
    ("s2", NOV[2], ["b", "c", "a"]),
    ("s3", NOV[3], ["c", "d"]),
    ("s4", NOV[4], ["e", "a"]),
    ("s5", NOV[5], ["a", "b"]),  # after the window
)
WINDOW = TrainingWindow(end_exclusive=NOV[5], days=4)


def test_sessions_split_by_day_in_order_and_outside_days_are_left_out():
    dataset, _ = build_training_dataset(SMALL, WINDOW)
    assert dict(zip(dataset["session_id"], dataset["split"], strict=True)) == {
        "s1": "train",
        "s2": "train",
        "s3": "validation",
        "s4": "test",
    }


def test_the_vocabulary_puts_training_favourites_first_and_keeps_new_items():
    dataset, vocabulary = build_training_dataset(SMALL, WINDOW)
    assert vocabulary == ["a", "b", "c", "d", "e"]
    assert dataset.set_index("session_id").loc["s4", "item_ids"] == [4, 0]
    assert dataset["length"].tolist() == [2, 3, 2, 2]


def test_a_valid_dataset_passes_the_schema_and_is_written_per_split(tmp_path):
    dataset, vocabulary = build_training_dataset(SMALL, WINDOW)
    TrainingSessionsSchema.validate(dataset)
    written = write_training_dataset(dataset, vocabulary, tmp_path)
    assert pd.read_parquet(written["test"])["session_id"].tolist() == ["s4"]
    assert json.loads((tmp_path / "vocabulary.json").read_text()) == vocabulary


def test_a_written_dataset_reads_back_the_same(tmp_path):
    dataset, vocabulary = build_training_dataset(SMALL, WINDOW)
    write_training_dataset(dataset, vocabulary, tmp_path / "ds")
    read, read_vocabulary = read_training_dataset(tmp_path / "ds")
    pd.testing.assert_frame_equal(read, dataset)
    assert read_vocabulary == vocabulary and read.attrs["vocabulary_size"] == len(vocabulary)


def test_a_read_dataset_holds_each_sku_and_id_once_however_many_sessions_view_it(tmp_path):
    # A month of a large shop is tens of millions of views of some 50,000 products: one int
    # object per view was most of the 1.5 GB this saves at that size. Ids above 256 (Python
    # shares the small ones anyway): 300 products, each in two sessions.
    products = [f"sku-{n:03d}" for n in range(300)]
    rows = [
        (f"s{n}", NOV[1 + n % 3], [products[n % 300], products[(n + 1) % 300]]) for n in range(300)
    ]
    dataset, vocabulary = build_training_dataset(sessions(*rows), WINDOW)
    write_training_dataset(dataset, vocabulary, tmp_path / "ds")
    read, _ = read_training_dataset(tmp_path / "ds")
    pd.testing.assert_frame_equal(read, dataset)
    last = vocabulary[-1]
    views = [sku for items in read["items"] for sku in items if sku == last]
    ids = [i for item_ids in read["item_ids"] for i in item_ids if i == len(vocabulary) - 1]
    assert len(views) == len(ids) == 2
    assert views[0] is views[1] and ids[0] is ids[1]


def test_nulls_in_a_stored_split_read_back_as_nulls_for_the_schema_to_name():
    store = MemoryStore()
    frames = {
        "train": sessions(("s1", NOV[1], ["a", None]), ("s2", NOV[2], None)),
        "validation": sessions(("s3", NOV[3], ["a"])),
        "test": sessions(("s4", NOV[4], [])),
    }
    for split, frame in frames.items():
        frame = frame.assign(item_ids=frame["items"].map(lambda i: None if i is None else [0]))
        store.put(f"{split}.parquet", frame.to_parquet(index=False), "")
    store.put("vocabulary.json", b'["a"]', "")
    read, _ = load_training_dataset(store)
    assert read["items"].tolist() == [["a", None], None, ["a"], []]


class MemoryStore(DatasetStore):
    def __init__(self):
        self.files = {}

    def location(self, name=""):
        return f"memory://{name}"

    def put(self, name, data, content_type):
        self.files[name] = (data, content_type)
        return self.location(name)

    def get(self, name):
        if name not in self.files:
            raise TrainingDatasetNotFound(self.location(name))
        return self.files[name][0]


def test_any_store_gets_the_same_bytes_as_the_folder(tmp_path):
    dataset, vocabulary = build_training_dataset(SMALL, WINDOW)
    store = MemoryStore()
    written = save_training_dataset(dataset, vocabulary, store)
    assert written == {
        name: f"memory://{name}.parquet" for name in ("train", "validation", "test")
    } | {"vocabulary": "memory://vocabulary.json"}
    write_training_dataset(dataset, vocabulary, tmp_path)
    for name, (data, _) in store.files.items():
        assert data == (tmp_path / name).read_bytes(), name
    assert store.files["vocabulary.json"][1] == "application/json"
    pd.testing.assert_frame_equal(load_training_dataset(store)[0], dataset)


def test_a_missing_or_partial_dataset_names_where_it_looked(tmp_path):
    with pytest.raises(TrainingDatasetNotFound) as missing:
        read_training_dataset(tmp_path / "nothing")
    assert str(missing.value) == (
        f"no training dataset at {tmp_path / 'nothing'}: materialize training_dataset first"
    )
    dataset, vocabulary = build_training_dataset(SMALL, WINDOW)
    write_training_dataset(dataset, vocabulary, tmp_path)
    (tmp_path / "validation.parquet").unlink()
    with pytest.raises(TrainingDatasetNotFound, match="incomplete.*validation.parquet is missing"):
        read_training_dataset(tmp_path)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: d.assign(length=d["length"] + 1), "as long as `length`"),
        (
            lambda d: d.assign(item_ids=d["item_ids"].map(lambda ids: [*ids, 99])),
            "in the vocabulary",
        ),
        (lambda d: d.assign(split=["train", "test", "validation", "test"]), "disjoint and ordered"),
        (lambda d: d.assign(session_id=["s1", "s1", "s3", "s4"]), "unique"),
        (lambda d: d.assign(length=1), "greater_than_or_equal_to(2)"),
    ],
)
def test_a_corrupted_dataset_fails_with_a_message_naming_the_rule(corrupt, message):
    dataset, _ = build_training_dataset(SMALL, WINDOW)
    broken = corrupt(dataset)
    broken.attrs = dataset.attrs
    with pytest.raises(pandera.errors.SchemaErrors) as error:
        TrainingSessionsSchema.validate(broken, lazy=True)
    assert message in str(error.value)


def test_a_window_too_short_to_train_is_refused():
    with pytest.raises(ValueError, match="leaves no training day"):
        TrainingWindow(end_exclusive=NOV[5], days=2)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match=r"lack the columns \['items'\]"):
        build_training_dataset(SMALL.drop(columns="items"), WINDOW)
