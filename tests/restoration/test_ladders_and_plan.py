"""Ladders of row shapes per backend, mode 1 on padded rows, and
``restore --plan``: what a folder will compile, checked against what
restoring it compiles."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from vf_jax import cli
from vf_jax.audio.synthetic import speech_like, voiced_signal
from vf_jax.restoration import buckets, networks
from vf_jax.restoration import plan as plan_lib
from vf_jax.restoration.windows import longest_window, window_plan

SR = 44100


def test_the_coarse_ladder_compiles_at_most_three_programs_with_little_padding():
    """The floor, on the reference corpus (2,000 files of 1-15 s) and on
    corpora of other lengths: at most three programs, and on the reference
    corpus at most 40 % more audio computed than held (padding, overlaps,
    filler rows)."""
    reference = plan_lib.reference_corpus()
    plan = plan_lib.plan_inputs(reference, backend="tpu", rows=4)
    assert len(plan["programs"]) <= 3 and plan["padding_fraction"] <= 0.40, plan
    assert plan["audio_seconds"] == pytest.approx(sum(n for n, _ in reference) / SR, abs=0.1)
    for shortest, longest in ((0.5, 15), (2, 30), (0.1, 120)):
        corpus = plan_lib.reference_corpus(300, shortest, longest, seed=1)
        assert len(plan_lib.plan_inputs(corpus, backend="tpu", rows=4)["programs"]) <= 3
    # A file that fits the top rung is one window; longer ones are cut into
    # windows of at most the top rung's capacity, all in one bucket.
    top = longest_window(30 * SR, "coarse")
    assert top == buckets.bucket_capacity(buckets.LADDERS["coarse"][-1]) and top > 15 * SR
    assert window_plan(15 * SR, top, SR // 2, "coarse") == [(0, 15 * SR)]
    windows = window_plan(40 * SR, top, SR // 2, "coarse")
    assert len(windows) == 3 and all(size <= top for _, size in windows)
    assert {buckets.frame_bucket(1 + size // 441, "coarse") for _, size in windows} == {
        buckets.LADDERS["coarse"][-1]}


@pytest.mark.parametrize("seed", range(4))
def test_the_cheapest_ladder_is_the_exhaustive_minimum(seed):
    """``cheapest_ladder`` (dynamic programming) against every subset of the
    candidate rungs, costed by hand (``program_cost`` per rung used, each
    row's seconds, the last batch of a rung filled): the same least cost; it
    keeps the top candidate; a free program gives each need its own rung (rows
    of one; larger batches may fill better merged), a dear one a single rung."""
    import itertools
    rng = np.random.default_rng(seed)
    candidates = buckets.FRAME_BUCKETS[:9] + (buckets.FRAME_BUCKETS[-1],)
    needs = [(int(rng.choice(candidates[:9])), int(rng.integers(1, 4))) for _ in range(7)]
    rows, cost = int(rng.integers(1, 4)), float(rng.uniform(0.5, 20))
    seconds = lambda b: b * 441 / SR

    def modelled(rungs):
        use = {}
        for need, n in needs:
            rung = min(b for b in rungs if b >= need)
            use[rung] = use.get(rung, 0) + n
        return sum(cost + -(-n // rows) * rows * seconds(b) for b, n in use.items())
    best = min(modelled(subset + (candidates[-1],))
               for k in range(len(candidates))
               for subset in itertools.combinations(candidates[:-1], k)
               if all(any(b >= need for b in subset + (candidates[-1],)) for need, _ in needs))
    chosen = buckets.cheapest_ladder(needs, rows, cost, candidates)
    assert chosen[-1] == candidates[-1]
    assert modelled(chosen) == pytest.approx(best)
    used = sorted({need for need, _ in needs})
    assert buckets.cheapest_ladder(needs, 1, 0.0, candidates)[:-1] == tuple(
        b for b in used if b != candidates[-1])
    assert buckets.cheapest_ladder(needs, rows, 1e9, candidates) == tuple(
        sorted({max(used), candidates[-1]}))


def test_plan_counts_rows_files_and_padding_by_hand():
    """Closed form: two mono files in the first rung, a stereo one in the
    second; batches of 4 rows."""
    first, second = buckets.LADDERS["coarse"][:2]
    inputs = [(2 * SR, 1), (3 * SR, 1), (8 * SR, 2)]
    plan = plan_lib.plan_inputs(inputs, backend="tpu", rows=4, costs=[
        {"chip": "v5e", "precision": "float32", "mode": 0, "rows": 4, "frames": first,
         "kind": "released", "compile_seconds": 50.0, "estimate_seconds": 0.25}])
    one, two = plan["programs"]
    assert (one["frames"], one["files"], one["calls"], one["audio_seconds"]) == (first, 2, 1, 5.0)
    assert one["padding_fraction"] == pytest.approx(4 * first * 441 / SR / 5.0 - 1, abs=1e-4)
    assert (one["compile_seconds"], one["estimate_seconds"]) == (50.0, 0.25)
    assert (two["frames"], two["files"], two["audio_seconds"]) == (second, 1, 16.0)
    assert two["compile_seconds"] is None and plan["compile_seconds"] is None
    computed = 4 * (first + second) * 441 / SR
    assert plan["padding_fraction"] == pytest.approx(computed / 21.0 - 1, abs=1e-4)


def test_mode_1_on_padded_rows_equals_each_row_at_its_length():
    """The high-frequency removal on a bucket's rows with their lengths gives,
    in each row's first ``length`` samples, what it gives on the row alone,
    and zeros after: one program serves every length."""
    rows = [speech_like(0.7, seed=1), voiced_signal(1.3, seed=2), speech_like(0.05, seed=3)]
    width = 2 * SR
    padded = np.zeros((len(rows), width), np.float32)
    for r, x in enumerate(rows):
        padded[r, :len(x)] = x
    padded[2, len(rows[2]):] = 0.5          # what is past a row's end must not matter
    got = np.asarray(jax.jit(networks.remove_high_frequency)(
        jnp.asarray(padded), jnp.asarray([len(x) for x in rows])))
    for r, x in enumerate(rows):
        alone = np.asarray(networks.remove_high_frequency(jnp.asarray(x[None])))[0]
        np.testing.assert_allclose(got[r, :len(x)], alone, rtol=0,
                                   atol=1e-5 * np.max(np.abs(alone)))
        assert not np.any(got[r, len(x):])


def write_folder(root):
    """Files of several lengths, rates and channels, and one that is not audio."""
    (root / "sub").mkdir(parents=True)
    sf.write(root / "a.wav", speech_like(0.4, seed=1), SR)
    sf.write(root / "sub" / "b.flac", voiced_signal(1.7, seed=2)[::2], 22050)
    sf.write(root / "c.wav", np.stack([speech_like(2.6, seed=3)] * 2, axis=1), SR)
    sf.write(root / "d.wav", voiced_signal(0.9, seed=4), SR)
    return root


def run_plan(capsys, *args):
    status = cli.main(["restore", "--plan", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_plan_names_the_programs_restoring_the_folder_compiles(tmp_path, small_weights_dir,
                                                                    capsys):
    """``--plan --json`` on this machine lists the row shapes that restoring
    the folder then compiles (counted by JAX's compile events), and reads no
    more than the headers."""
    src = write_folder(tmp_path / "in")
    status, out, _ = run_plan(capsys, "-i", src, "--json", "--weights", small_weights_dir)
    assert status == 0
    plan = json.loads(out)
    assert plan["backend"] == jax.default_backend() and plan["files"] == 4
    # On a CPU a folder takes rungs of the fine ladder chosen for its lengths.
    assert plan["ladder"] == "auto" and plan["rungs"][-1] == buckets.FRAME_BUCKETS[-1]
    assert set(plan["rungs"]) <= set(buckets.FRAME_BUCKETS)
    from vf_jax.audio.io import find_audio_files
    inputs, errors = plan_lib.read_inputs(src / rel for rel in find_audio_files(str(src)))
    assert len(inputs) == 4 and not errors
    assert tuple(plan["rungs"]) == plan_lib.auto_ladder(inputs)
    fine = plan_lib.plan_inputs(inputs, backend="cpu", rows=1, ladder="fine")
    assert len(plan["programs"]) <= len(fine["programs"])
    assert plan["audio_seconds"] == pytest.approx(0.4 + 1.7 + 2 * 2.6 + 0.9, abs=1e-3)
    expected = {(p["rows"], p["frames"]) for p in plan["programs"]}

    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiled.append(kw.get("fun_name"))
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration" else None)
    traced = []
    original = networks.restore_rows_jit.jitted

    class Spy:         # the shapes restoring the folder runs its rows program on
        def __call__(self, variables, wav, lengths, **kw):
            traced.append((wav.shape[0], kw["n_frames"]))
            return original(variables, wav, lengths, **kw)

        def __getattr__(self, name):
            return getattr(original, name)
    networks.restore_rows_jit.__dict__["jitted"] = Spy()
    try:
        assert cli.main(["restore", "-i", str(src), "-o", str(tmp_path / "out"), "--quiet",
                         "--weights", str(small_weights_dir)]) == 0
    finally:
        networks.restore_rows_jit.__dict__["jitted"] = original
    assert set(traced) == expected, (traced, plan)
    assert len([c for c in compiled if "restore_rows" in str(c)]) <= len(expected)
    # On a TPU the same folder takes the coarse ladder: one program here.
    status, out, _ = run_plan(capsys, "-i", src, "--json", "--backend", "tpu")
    tpu = json.loads(out)
    assert status == 0 and tpu["ladder"] == "coarse"
    assert [p["frames"] for p in tpu["programs"]] == [buckets.LADDERS["coarse"][0]]
    assert tpu["programs"][0]["rows"] == 4 and tpu["programs"][0]["files"] == 4


def test_the_plan_as_a_table_and_its_errors(tmp_path, capsys):
    src = write_folder(tmp_path / "in")
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    status, out, err = run_plan(capsys, "-i", src, "--backend", "tpu")
    assert status == 1 and "4 file(s)" in out and "| 4 | 576 |" in out
    assert len(err.strip().splitlines()) == 2 and "broken.wav" in err
    assert "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in (((("-i", empty)), "no audio files in"),
                          (("-i", tmp_path / "absent"), "input not found"),
                          (("-i", src / "a.wav"), "--plan takes a folder"),
                          (("-i", src, "--mode", "2"), "--plan covers modes 0 and 1")):
        status, out, err = run_plan(capsys, *args)
        assert status != 0 and out == "" and message in err, (args, err)
        assert len(err.strip().splitlines()) == 1
    status = cli.main(["restore", "-i", str(src)])
    assert status != 0 and "-o/--output is required" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")
