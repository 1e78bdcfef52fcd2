"""MAFW, RAVDESS and CREMA-D: file-name codes, actor folds, class maps, bad input, and the real
``hdf`` commands (verify, a one-batch fit, a cross-corpus test) on miniature published layouts."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from cli_utils import REPO, TINY_NET, error_line, run_console
from corpora_utils import (
    MAFW_SPLIT_DIR,
    CorpusTree,
    build_cremad,
    build_mafw,
    build_ravdess,
    ravdess_name,
)
from hdf_lightning.data import (
    ClassMap,
    CorruptClipError,
    CREMADDataModule,
    DatasetNotFoundError,
    FileNameError,
    MAFWDataModule,
    MissingClassError,
    MissingClipError,
    RAVDESSDataModule,
    SplitFileError,
)
from hdf_lightning.data.classes import (
    CLASS_NAMES,
    CREMAD_CLASS_NAMES,
    MAFW_CLASS_NAMES,
    MAFW_DFER_CLIP_ORDER,
    RAVDESS_CLASS_NAMES,
    TO_DFEW,
)
from hdf_lightning.data.corpora import (
    CREMADRecord,
    RAVDESSRecord,
    actor_folds,
    parse_cremad_name,
    parse_ravdess_name,
)
from hdf_lightning.data.verify import verify_datamodule

RAVDESS_ACTORS = [1, 2, 3, 4]
CREMAD_ACTORS = [1001, 1002, 1003, 1004]
LOADING = {"num_frames": 4, "crop_size": 32, "batch_size": 4, "num_workers": 0}


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory: pytest.TempPathFactory) -> CorpusTree:
    """Four actors of RAVDESS (read-only: tests that change files build their own)."""
    return build_ravdess(tmp_path_factory.mktemp("ravdess") / "RAVDESS", RAVDESS_ACTORS)


@pytest.fixture(scope="module")
def cremad(tmp_path_factory: pytest.TempPathFactory) -> CorpusTree:
    """Four actors of CREMA-D (read-only)."""
    return build_cremad(tmp_path_factory.mktemp("cremad") / "CREMA-D", CREMAD_ACTORS)


@pytest.fixture(scope="module")
def mafw(tmp_path_factory: pytest.TempPathFactory) -> CorpusTree:
    """MAFW with 3 clips per class (read-only)."""
    return build_mafw(tmp_path_factory.mktemp("mafw") / "MAFW")


def _ravdess(root: Path, **options: object) -> RAVDESSDataModule:
    settings: dict = {"actors": RAVDESS_ACTORS, "num_folds": 2, **LOADING}
    settings.update(options)
    return RAVDESSDataModule(root, **settings)


def _cremad(root: Path, **options: object) -> CREMADDataModule:
    settings: dict = {"actors": CREMAD_ACTORS, "num_folds": 2, **LOADING}
    settings.update(options)
    return CREMADDataModule(root, **settings)


def _mafw(root: Path, **options: object) -> MAFWDataModule:
    return MAFWDataModule(root, **{**LOADING, **options})


# ------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("stem", "problem"),
    [
        ("02-01-06-01-02-01-12", None),
        ("01-02-05-02-01-02-24", None),
        ("02-01-06-01-02-01", "7 two-digit parts"),
        ("02-01-6-01-02-01-12", "7 two-digit parts"),
        ("04-01-06-01-02-01-12", "modality 04"),
        ("02-03-06-01-02-01-12", "vocal channel 03"),
        ("02-01-09-01-02-01-12", "emotion 09"),
        ("02-01-06-03-02-01-12", "intensity 03"),
        ("02-01-06-01-03-01-12", "statement 03"),
        ("02-01-06-01-02-00-12", "repetition 00"),
        ("02-01-06-01-02-01-25", "actor 25"),
        ("02-01-01-02-01-01-01", "neutral (emotion 01) has no strong intensity"),
        ("02-02-07-01-01-01-01", "song has no disgust"),
    ],
)
def test_ravdess_names(stem: str, problem: str | None) -> None:
    if problem is None:
        fields = parse_ravdess_name(stem)
        assert fields["actor"] == int(stem[-2:])
        assert fields["emotion"] == RAVDESS_CLASS_NAMES[int(stem[6:8]) - 1]
        return
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_ravdess_name(stem)


@pytest.mark.parametrize(
    ("stem", "problem"),
    [
        ("1001_DFA_ANG_XX", None),
        ("1091_WSI_SAD_HI", None),
        ("1001_DFA_ANG", "4 parts"),
        ("1000_DFA_ANG_XX", "actor 1000"),
        ("1092_DFA_ANG_XX", "actor 1092"),
        ("1001_ABC_ANG_XX", "sentence ABC"),
        ("1001_DFA_SUR_XX", "emotion SUR"),
        ("1001_DFA_ANG_ZZ", "level ZZ"),
    ],
)
def test_cremad_names(stem: str, problem: str | None) -> None:
    if problem is None:
        assert parse_cremad_name(stem)["level"] == stem[-2:]
        return
    with pytest.raises(ValueError, match=problem):
        parse_cremad_name(stem)


# ------------------------------------------------------------------------------------ folds


def test_actor_folds_are_contiguous_blocks_of_the_sorted_actors() -> None:
    folds = actor_folds(range(24, 0, -1), 5)
    blocks = {k: sorted(a for a, f in folds.items() if f == k) for k in range(1, 6)}
    assert blocks == {
        1: [1, 2, 3, 4, 5],
        2: [6, 7, 8, 9, 10],
        3: [11, 12, 13, 14, 15],
        4: [16, 17, 18, 19, 20],
        5: [21, 22, 23, 24],
    }
    assert actor_folds([3, 1, 2, 4], 2) == {1: 1, 2: 1, 3: 2, 4: 2}
    with pytest.raises(ValueError, match="num_folds must be >= 2"):
        actor_folds([1, 2], 1)
    with pytest.raises(ValueError, match="must not exceed the number of actors"):
        actor_folds([1, 2], 3)


@pytest.mark.parametrize("corpus", ["ravdess", "cremad"])
@pytest.mark.parametrize("num_folds", [2, 4])
def test_folds_are_subject_independent(
    corpus: str, num_folds: int, request: pytest.FixtureRequest
) -> None:
    tree: CorpusTree = request.getfixturevalue(corpus)
    make = _ravdess if corpus == "ravdess" else _cremad
    tested: list[str] = []
    for fold in range(1, num_folds + 1):
        dm = make(tree.root, fold=fold, num_folds=num_folds)
        train, test = dm.split_records("train"), dm.split_records("test")
        train_actors = {r.actor for r in train}  # type: ignore[attr-defined]
        test_actors = {r.actor for r in test}  # type: ignore[attr-defined]
        assert train_actors and test_actors and not train_actors & test_actors, fold
        assert {r.clip_id for r in train}.isdisjoint(r.clip_id for r in test)
        tested += [r.clip_id for r in test]
        assert (dm.hparams["fold"], dm.hparams["num_folds"]) == (fold, num_folds)
    everything = _ravdess(tree.root) if corpus == "ravdess" else _cremad(tree.root)
    selected = everything.split_records("train") + everything.split_records("test")
    assert sorted(tested) == sorted(r.clip_id for r in selected)  # each clip tested exactly once


def test_fold_0_puts_the_whole_corpus_in_both_splits(
    ravdess: CorpusTree, cremad: CorpusTree, mafw: CorpusTree
) -> None:
    for dm, count in (
        (_ravdess(ravdess.root, fold=0), 4 * 10),
        (_cremad(cremad.root, fold=0), 4 * 8),
        (_mafw(mafw.root, fold=0), 33),
    ):
        train, test = dm.split_records("train"), dm.split_records("test")
        assert len(test) == count and sorted(r.path for r in train) == sorted(r.path for r in test)
    assert _ravdess(ravdess.root, fold=0).splits.describe() == "RAVDESS, all 4 actors (fold 0)"  # type: ignore[attr-defined]


def test_fold_options_are_checked_without_io(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"fold must be in 1\.\.2"):
        _ravdess(tmp_path / "absent", fold=3)
    with pytest.raises(ValueError, match="must not exceed the number of actors"):
        _ravdess(tmp_path / "absent", num_folds=5)
    with pytest.raises(ValueError, match="actors must be RAVDESS actors"):
        _ravdess(tmp_path / "absent", actors=[0, 1])
    dm = RAVDESSDataModule(tmp_path / "absent")  # all 24 actors, 5 folds
    assert dm.hparams["actors"] is None and dm.splits.describe() == (  # type: ignore[attr-defined]
        "RAVDESS fold 1 of 5 (test actors 1-5)"
    )


def test_a_split_file_overrides_the_folds(ravdess: CorpusTree, tmp_path: Path) -> None:
    split_file = tmp_path / "split.csv"
    test = [ravdess_name(e, 1) for e in range(1, 9)] + [ravdess_name(e, 4) for e in range(1, 9)]
    train = [ravdess_name(e, a) for a in (2, 3) for e in range(1, 9)]
    rows = [f"Actor_01/{c}.mp4,test" if i == 0 else f"{c},test" for i, c in enumerate(test)]
    split_file.write_text("clip,split\n" + "\n".join(rows + [f"{c},train" for c in train]) + "\n")
    dm = RAVDESSDataModule(ravdess.root, split_file=split_file, **LOADING)
    assert sorted(r.clip_id for r in dm.split_records("test")) == sorted(test)
    assert sorted(r.clip_id for r in dm.split_records("train")) == sorted(train)
    assert dm.split_records("test")[0].source == f"{split_file}:2"
    assert dm.hparams["split_file"] == split_file


def test_a_split_file_naming_a_missing_actor_names_its_folder(
    ravdess: CorpusTree, tmp_path: Path
) -> None:
    split_file = tmp_path / "split.csv"
    rows = [f"{ravdess_name(e, 1)},train" for e in range(1, 9)] + [f"{ravdess_name(1, 7)},test"]
    split_file.write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetNotFoundError, match=r"RAVDESS actor folder not found: .*Actor_07"):
        RAVDESSDataModule(ravdess.root, split_file=split_file, **LOADING).split_records("train")
    split_file.write_text(f"{ravdess_name(1, 1)},train\n{ravdess_name(1, 1, statement=2)},test\n")
    with pytest.raises(MissingClipError, match=r"split\.csv:2: clip 02-01-01-01-02-01-01 not"):
        RAVDESSDataModule(ravdess.root, split_file=split_file, **LOADING).split_records("test")
    split_file.write_text(f"{ravdess_name(1, 1)},validation\n")
    with pytest.raises(SplitFileError, match=r"split\.csv:1: split 'validation'"):
        RAVDESSDataModule(ravdess.root, split_file=split_file, **LOADING).split_records("test")


# ------------------------------------------------------------------------------------ records


def test_ravdess_selects_modality_and_channel_and_ignores_audio_files(
    ravdess: CorpusTree, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hdf_lightning.data.corpora"):
        speech = _ravdess(ravdess.root).split_records("test")
    assert "ignored 4 audio-only (03-) file(s)" in caplog.text  # one per actor folder
    assert all(isinstance(r, RAVDESSRecord) and r.kind == "video" for r in speech)
    assert {(r.modality, r.vocal_channel) for r in speech} == {("video_only", "speech")}  # type: ignore[attr-defined]
    assert len(speech) == 2 * 10 and {r.actor for r in speech} == {1, 2}  # type: ignore[attr-defined]
    strong = [r for r in speech if r.intensity == "strong"]  # type: ignore[attr-defined]
    assert sorted(RAVDESS_CLASS_NAMES[r.label] for r in strong) == ["fearful"] * 2 + ["sad"] * 2
    record = next(r for r in speech if r.clip_id == "02-01-06-02-01-02-01")
    assert (record.statement, record.repetition, record.path.name) == (  # type: ignore[attr-defined]
        1,
        2,
        "02-01-06-02-01-02-01.mp4",
    )
    song = _ravdess(ravdess.root, vocal_channel="song")
    assert song.class_names == list(RAVDESS_CLASS_NAMES[:6])
    assert len(song.split_records("test")) == 2 * 6
    both = _ravdess(ravdess.root, modality="both", vocal_channel="both")
    assert both.num_classes == 8 and len(both.split_records("test")) == 2 * 18


def test_cremad_records_keep_actor_sentence_and_level(cremad: CorpusTree) -> None:
    records = _cremad(cremad.root).split_records("train")
    assert all(isinstance(r, CREMADRecord) and r.kind == "video" for r in records)
    assert {r.actor for r in records} == {1003, 1004}  # type: ignore[attr-defined]
    by_id = {r.clip_id: r for r in records}
    assert by_id["1003_IEO_ANG_HI"].level == "HI"  # type: ignore[attr-defined]
    assert by_id["1004_IEO_HAP_LO"].sentence == "IEO"  # type: ignore[attr-defined]
    assert by_id["1004_DFA_NEU_XX"].path.name == "1004_DFA_NEU_XX.flv"
    for clip_id, record in by_id.items():
        assert CREMAD_CLASS_NAMES[record.label] == cremad.clips[clip_id][0]


def test_frame_folders_of_the_same_layout(tmp_path: Path) -> None:
    tree = build_ravdess(tmp_path / "crops", [1, 2], frames=True)
    (tmp_path / "crops" / "Actor_01" / f"{ravdess_name(3, 1)}.partial").mkdir()  # unfinished
    (tmp_path / "crops" / "Actor_01" / "manifest.json").write_text("{}")
    dm = _ravdess(tree.root, variant="frames", actors=[1, 2])
    dm.setup("fit")
    assert {r.kind for r in dm.split_records("train")} == {"frames"}
    assert dm.split_records("test")[0].path.is_dir()
    assert next(iter(dm.train_dataloader()))["video"].shape == (4, 3, 4, 32, 32)
    crops = build_cremad(tmp_path / "cremad_crops", [1001, 1002], frames=True)
    records = _cremad(crops.root, variant="frames", actors=[1001, 1002]).split_records("test")
    assert {r.kind for r in records} == {"frames"} and len(records) == 8


def _extract_faces(
    videos: Path, out: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    """``hdf data extract --faces --recursive`` of a corpus (whole frames: the tiny clips are all
    face): one run, the corpus's folders kept."""
    args = ["data", "extract", "--faces=true", f"--videos={videos}", f"--out={out}"]
    args += ["--recursive=true", "--detector=none", "--size=32"]
    code, err = run_console(args, monkeypatch, capsys)
    assert code == 0, err


def test_raw_videos_to_face_crops_in_the_corpus_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ravdess = build_ravdess(tmp_path / "RAVDESS", [1, 2])
    crops = tmp_path / "RAVDESS_faces"
    _extract_faces(ravdess.root, crops, monkeypatch, capsys)
    assert sorted(p.name for p in crops.iterdir()) == ["Actor_01", "Actor_02", "manifest.json"]
    cremad = build_cremad(tmp_path / "CREMA-D", [1001, 1002])
    cremad_crops = tmp_path / "CREMA-D_faces"
    _extract_faces(cremad.root, cremad_crops, monkeypatch, capsys)
    assert (cremad_crops / "VideoFlash").is_dir()
    # a rerun finds every clip done (the manifest is keyed by the clips' relative folders)
    frames = sorted(crops.rglob("*.jpg"))
    stamps = [p.stat().st_mtime_ns for p in frames]
    _extract_faces(ravdess.root, crops, monkeypatch, capsys)
    assert [p.stat().st_mtime_ns for p in sorted(crops.rglob("*.jpg"))] == stamps
    for videos, frames in (
        (_ravdess(ravdess.root, actors=[1, 2]), _ravdess(crops, actors=[1, 2], variant="frames")),
        (
            _cremad(cremad.root, actors=[1001, 1002]),
            _cremad(cremad_crops, actors=[1001, 1002], variant="frames"),
        ),
    ):
        for split in ("train", "test"):
            read = frames.split_records(split)
            assert [(r.clip_id, r.label) for r in read] == [
                (r.clip_id, r.label) for r in videos.split_records(split)
            ]
            assert {r.kind for r in read} == {"frames"}
        assert frames.face_crop is not None and frames.face_crop.detector == "none"
        assert verify_datamodule(frames, decode=True).ok
    data = ["--data=hdf_lightning.data.RAVDESSDataModule", f"--data.root={crops}"]
    data += ["--data.variant=frames", "--data.actors=[1, 2]", "--data.num_folds=2"]
    code, _ = run_console(["data", "verify", *data], monkeypatch, capsys)
    assert code == 0


def test_mafw_reads_its_split_files(mafw: CorpusTree) -> None:
    dm = _mafw(mafw.root, fold=2)
    assert dm.class_names == list(MAFW_CLASS_NAMES) and dm.num_classes == 11
    train, test = dm.split_records("train"), dm.split_records("test")
    assert len(train) + len(test) == 33 and not {r.clip_id for r in train} & {
        r.clip_id for r in test
    }
    for record in train + test:
        assert MAFW_CLASS_NAMES[record.label] == mafw.clips[record.clip_id][0]
        assert record.path == mafw.root / "data" / "faces" / record.clip_id
    assert test[0].source.endswith(f"{MAFW_SPLIT_DIR}/set_2/test.txt:1")
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["video"].shape == (4, 3, 4, 32, 32)


def _convert(mafw: CorpusTree, annotation: str, out: Path) -> None:
    """MAFW's split files rewritten in DFER-CLIP's or MAE-DFER's format, with the paths of
    another machine (as those repositories' files have)."""
    for fold in range(1, 6):
        for split in ("train", "test"):
            lines = (mafw.root / MAFW_SPLIT_DIR / f"set_{fold}" / f"{split}.txt").read_text()
            rows = []
            for line in lines.split("\n"):
                if not line:
                    continue
                name, label = line.split()
                clip = name.removesuffix(".mp4")
                if annotation == "dfer-clip":
                    rows.append(
                        f"/data/MAFW/data/faces/{clip} 6 {MAFW_DFER_CLIP_ORDER.index(label)}"
                    )
                    path = out / f"MAFW_set_{fold}_{split}.txt"
                else:
                    rows.append(f"/mnt/MAFW/data/frames/{clip} {MAFW_CLASS_NAMES.index(label)}")
                    path = out / f"split0{fold}" / f"{split}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("annotation", ["dfer-clip", "mae-dfer"])
def test_mafw_reads_the_annotation_files_of_dfer_clip_and_mae_dfer(
    mafw: CorpusTree, annotation: str, tmp_path: Path
) -> None:
    _convert(mafw, annotation, tmp_path / "annotation")
    for fold in (1, 4):
        own = _mafw(mafw.root, fold=fold)
        other = _mafw(
            mafw.root, fold=fold, annotation=annotation, annotation_dir=tmp_path / "annotation"
        )
        for split in ("train", "test"):
            mine = [(r.path, r.label) for r in own.split_records(split)]
            assert [(r.path, r.label) for r in other.split_records(split)] == mine


def test_mafw_frames_and_videos(tmp_path: Path) -> None:
    frames = build_mafw(tmp_path / "frames", clips_per_class=2, variant="frames")
    records = _mafw(frames.root, variant="frames").split_records("test")
    assert records and records[0].path.parent.name == "frames" and records[0].kind == "frames"
    videos = build_mafw(tmp_path / "videos", clips_per_class=2, variant="video")
    records = _mafw(videos.root, variant="video").split_records("test")
    assert records[0].kind == "video" and records[0].path.suffix == ".mp4"


# ------------------------------------------------------------------------------------ class maps


def test_class_maps_onto_dfew_and_the_shared_six() -> None:
    ravdess = ClassMap.resolve("dfew7", RAVDESS_CLASS_NAMES, TO_DFEW["RAVDESS"])
    assert ravdess is not None and ravdess.target == CLASS_NAMES
    assert ravdess.index[RAVDESS_CLASS_NAMES.index("calm")] is None
    assert ravdess.index[RAVDESS_CLASS_NAMES.index("fearful")] == CLASS_NAMES.index("fear")
    cremad = ClassMap.resolve("shared6", CREMAD_CLASS_NAMES, TO_DFEW["CREMA-D"])
    assert cremad is not None and "surprise" not in cremad.target and len(cremad.target) == 6
    assert cremad.kept == CREMAD_CLASS_NAMES
    mafw = ClassMap.resolve("dfew7", MAFW_CLASS_NAMES, TO_DFEW["MAFW"])
    assert mafw is not None and mafw.kept == MAFW_CLASS_NAMES[:7]
    custom = ClassMap.resolve(
        {"calm": "neutral", "neutral": "neutral", "happy": "happy", "sad": None},
        RAVDESS_CLASS_NAMES,
        TO_DFEW["RAVDESS"],
    )
    assert custom is not None and custom.target == ("neutral", "happy")
    assert custom.index == (0, 0, 1, None, None, None, None, None)
    assert ClassMap.resolve(None, RAVDESS_CLASS_NAMES, TO_DFEW["RAVDESS"]) is None
    for spec, message in (
        ("dfew8", "class_map must be one of"),
        ({"joy": "happy"}, "not classes of this corpus"),
        ({"calm": None}, "keeps none"),
    ):
        with pytest.raises(ValueError, match=message):
            ClassMap.resolve(spec, RAVDESS_CLASS_NAMES, TO_DFEW["RAVDESS"])


def test_a_class_map_relabels_and_counts_what_it_drops(
    ravdess: CorpusTree, caplog: pytest.LogCaptureFixture
) -> None:
    dm = _ravdess(ravdess.root, class_map="dfew7")
    assert dm.class_names == list(CLASS_NAMES) and dm.hparams["class_map"] == "dfew7"
    with caplog.at_level(logging.INFO, logger="hdf_lightning.data.corpora"):
        records = dm.split_records("train")
    assert "2 clip(s) of classes outside dfew7 left out (calm 2)" in caplog.text
    for record in records:
        name = ravdess.clips[record.clip_id][0]
        assert CLASS_NAMES[record.label] == TO_DFEW["RAVDESS"][name]
    assert len(records) == 2 * 10 - 2
    mafw_map = _mafw(Path("absent"), class_map="shared6")
    assert mafw_map.num_classes == 6


# ------------------------------------------------------------------------------------ bad input


def test_a_bad_file_name_is_one_line_naming_the_file(tmp_path: Path) -> None:
    tree = build_ravdess(tmp_path / "RAVDESS", [1, 2])
    bad = tree.root / "Actor_02" / "02-01-09-01-01-01-02.mp4"
    shutil.copy(tree.root / "Actor_02" / f"{ravdess_name(1, 2)}.mp4", bad)
    with pytest.raises(FileNameError) as info:
        _ravdess(tree.root, actors=[1, 2]).setup("fit")
    assert str(bad) in str(info.value) and "emotion 09 is not in 01..08" in str(info.value)
    assert "\n" not in str(info.value)
    dm = _ravdess(tree.root, actors=[1, 2], skip_bad=True)
    dm.setup("fit")
    assert dm.skipped == {"train": 1, "val": 0}
    report = verify_datamodule(_ravdess(tree.root, actors=[1, 2]), decode=False)
    assert report.splits["train"].bad_rows == [str(info.value)]
    assert not report.splits["test"].bad_rows  # actor 2 is in fold 2: not a test clip of fold 1
    wrong_folder = tree.root / "Actor_01" / f"{ravdess_name(5, 2)}.mp4"
    shutil.move(bad, wrong_folder)
    with pytest.raises(FileNameError, match="actor 02 of the name is not the folder's"):
        _ravdess(tree.root, actors=[1, 2]).split_records("test")


def test_a_missing_actor_or_an_empty_root_names_what_is_missing(tmp_path: Path) -> None:
    tree = build_ravdess(tmp_path / "RAVDESS", [1, 2])
    with pytest.raises(DatasetNotFoundError, match=r"RAVDESS actor folder not found: .*Actor_03"):
        _ravdess(tree.root, actors=[1, 2, 3]).setup("fit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"RAVDESS actor folder not found: .*Actor_01"):
        RAVDESSDataModule(tmp_path / "empty").setup("fit")
    with pytest.raises(DatasetNotFoundError, match="Zenodo"):
        RAVDESSDataModule(tmp_path / "absent").setup("test")
    crema = build_cremad(tmp_path / "CREMA-D", [1001, 1002])
    with pytest.raises(DatasetNotFoundError, match="CREMA-D actor 1003 has no clip"):
        _cremad(crema.root, actors=[1001, 1002, 1003]).setup("test")
    with pytest.raises(
        DatasetNotFoundError, match=r"VideoFlash folder not found: .*CheyneyComputer"
    ):
        CREMADDataModule(tmp_path / "empty").setup("test")


def test_a_class_absent_from_a_folds_training_split_is_named(tmp_path: Path) -> None:
    tree = build_ravdess(tmp_path / "RAVDESS", [1, 2])
    (tree.root / "Actor_02" / f"{ravdess_name(7, 2)}.mp4").unlink()  # actor 2's only disgust
    dm = _ravdess(tree.root, actors=[1, 2], fold=1)
    with pytest.raises(MissingClassError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "RAVDESS fold 1 of 2 (test actors 1)" in message and "'disgust'" in message
    assert _ravdess(tree.root, actors=[1, 2], fold=2).split_records("train")  # actor 1 has it
    mafw = build_mafw(tmp_path / "MAFW", clips_per_class=2)
    path = mafw.root / MAFW_SPLIT_DIR / "set_3" / "train.txt"
    path.write_text(
        "".join(
            line + "\n" for line in path.read_text().split("\n") if "contempt" not in line and line
        )
    )
    with pytest.raises(MissingClassError, match=r"MAFW fold 3, train split .*'contempt'"):
        _mafw(mafw.root, fold=3).setup("fit")


def test_bad_mafw_rows_name_file_and_line(tmp_path: Path) -> None:
    mafw = build_mafw(tmp_path / "MAFW", clips_per_class=2)
    path = mafw.root / MAFW_SPLIT_DIR / "set_1" / "test.txt"
    lines = path.read_text().split("\n")
    lines[0] = lines[0].split()[0] + " joy"
    lines[1] = "99999.mp4 anger"
    path.write_text("\n".join(lines))
    with pytest.raises(SplitFileError, match=r"set_1/test\.txt:1: class 'joy'"):
        _mafw(mafw.root).split_records("test")
    errors: list = []
    records = _mafw(mafw.root).splits.read("test", errors)
    assert len(errors) == 2 and "test.txt:2: clip 99999 not found" in str(errors[1])
    assert len(records) == len([line for line in lines if line]) - 2


def test_an_flv_that_does_not_decode_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = build_cremad(tmp_path / "CREMA-D", [1001, 1002])
    broken = tree.root / "VideoFlash" / "1002_DFA_ANG_XX.flv"
    broken.write_bytes(b"FLV\x01 not really" * 8)
    data = [
        "--data=hdf_lightning.data.CREMADDataModule",
        f"--data.root={tree.root}",
        "--data.actors=[1001, 1002]",
        "--data.num_folds=2",
        "--data.num_frames=4",
    ]
    code, _ = run_console(["data", "verify", *data], monkeypatch, capsys)
    assert code == 1
    report = verify_datamodule(_cremad(tree.root, actors=[1001, 1002]), decode=False)
    (problem,) = report.splits["train"].unreadable
    assert str(broken) in problem and "\n" not in problem
    code, err = run_console(_fit_args(tmp_path / "run", data), monkeypatch, capsys)
    assert code == 2
    line = error_line(err)
    assert str(broken) in line and "cannot open video" in line
    dm = _cremad(tree.root, actors=[1001, 1002], skip_bad=True)
    dm.setup("fit")
    assert dm.skipped["train"] == 1 and len(dm.datasets["train"]) == 7
    with pytest.raises(CorruptClipError, match=r"1002_DFA_ANG_XX\.flv"):
        _cremad(tree.root, actors=[1001, 1002]).setup("fit")


# ------------------------------------------------------------------------------------ hdf commands


def _fit_args(run: Path, data: list[str]) -> list[str]:
    """A one-batch ``hdf fit`` of the tiny HDF network."""
    return [
        "fit",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        *TINY_NET,
        *data,
        "--data.crop_size=32",
        "--data.batch_size=4",
        "--data.num_workers=0",
        "--data.protocol=paper",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        f"--trainer.default_root_dir={run}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--figures.enabled=false",
    ]


def _data_args(corpus: str, tree: CorpusTree, *extra: str) -> list[str]:
    options = {
        "ravdess": [
            "--data=hdf_lightning.data.RAVDESSDataModule",
            f"--data.actors={RAVDESS_ACTORS}",
        ],
        "cremad": ["--data=hdf_lightning.data.CREMADDataModule", f"--data.actors={CREMAD_ACTORS}"],
        "mafw": ["--data=hdf_lightning.data.MAFWDataModule"],
    }[corpus]
    folds = [] if corpus == "mafw" else ["--data.num_folds=2"]
    return [*options, f"--data.root={tree.root}", *folds, "--data.num_frames=4", *extra]


@pytest.mark.parametrize("corpus", ["ravdess", "cremad", "mafw"])
def test_hdf_data_verify_and_a_one_batch_fit(
    corpus: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tree: CorpusTree = request.getfixturevalue(corpus)
    data = _data_args(corpus, tree)
    code, _ = run_console(["data", "verify", *data], monkeypatch, capsys)
    assert code == 0
    code, err = run_console(_fit_args(tmp_path / "run", data), monkeypatch, capsys)
    assert code == 0, err
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert {"ravdess": "RAVDESSDataModule", "cremad": "CREMADDataModule", "mafw": "MAFWDataModule"}[
        corpus
    ] in config
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("class_map", ["dfew7", "shared6"])
def test_cross_corpus_test_of_a_ravdess_model_on_cremad(
    class_map: str,
    ravdess: CorpusTree,
    cremad: CorpusTree,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mapped = f"--data.class_map={class_map}"
    fit = _fit_args(tmp_path / "ravdess", _data_args("ravdess", ravdess, mapped))
    code, err = run_console(fit, monkeypatch, capsys)
    assert code == 0, err
    checkpoint = tmp_path / "ravdess" / "checkpoints" / "last.ckpt"
    test = [
        "test",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        *TINY_NET,
        *_data_args("cremad", cremad, mapped, "--data.fold=0"),  # all of CREMA-D
        "--data.crop_size=32",
        "--data.batch_size=4",
        "--data.num_workers=0",
        f"--ckpt_path={checkpoint}",
        f"--trainer.default_root_dir={tmp_path / 'cremad'}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--figures.enabled=false",
    ]
    code, err = run_console(test, monkeypatch, capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "cremad" / "test_metrics.json").read_text())
    assert metrics["ckpt_path"] == str(checkpoint)
    assert 0.0 <= metrics["metrics"]["test/war"] <= 1.0
    classes = [c for c in CLASS_NAMES if class_map == "dfew7" or c != "surprise"]
    assert sorted(k for k in metrics["metrics"] if k.startswith("test/recall_")) == sorted(
        f"test/recall_{name}" for name in classes
    )
    # the other class list: the checkpoint is refused in one line, before any test step
    other = "shared6" if class_map == "dfew7" else "dfew7"
    refused = [a.replace(mapped, f"--data.class_map={other}") for a in test]
    refused = [a.replace(str(tmp_path / "cremad"), str(tmp_path / "other")) for a in refused]
    code, err = run_console(refused, monkeypatch, capsys)
    line = error_line(err)
    assert code == 2 and "was trained on the classes" in line and str(checkpoint) in line
    assert "--data.class_map" in line
