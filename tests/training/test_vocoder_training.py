"""Training the vocoder: losses fall, EMA, discriminator start, data-parallel
equivalence, exact resume, logs, the command line, export and restore."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vf_jax.training.vocoder import step as vts  # noqa: E402
from vf_jax.training.vocoder import train as vt  # noqa: E402

from helpers import (COMPARED, CROP, GAN_START, ROOT, clip_batch, mesh_step,  # noqa: E402
                     vocoder_config)

pytestmark = pytest.mark.slow        # the whole module takes minutes


@pytest.fixture(scope="module")
def fixed_batch_run():
    """GAN_START + 2 of the loop's updates on one fixed batch: every state
    (on the host, the first the initial one) and every step's metrics."""
    from vf_jax.training import parallel
    config = vocoder_config()
    step, mesh = mesh_step(config)
    state = parallel.place_replicated(vts.init_state(config, jax.random.PRNGKey(0)), mesh)
    batch = parallel.global_batch(clip_batch(), mesh)
    states, history = [jax.device_get(state)], []
    for _ in range(GAN_START + 2):
        state, m = step(state, batch)
        states.append(jax.device_get(state))
        history.append({k: float(v) for k, v in m.items()})
    return states, history


def test_losses_fall_ema_tracks_and_discriminators_start_on_time(fixed_batch_run):
    """On a fixed batch: generator-only steps lower the multi-resolution STFT
    and mel losses, leave the discriminators and their optimiser untouched and
    keep the EMA at 0.99 old + 0.01 new; from ``discriminator_start`` on, the
    LSGAN losses and discriminator updates run."""
    states, history = fixed_batch_run
    leaves = jax.tree_util.tree_leaves
    for n, (prev, now, m) in enumerate(zip(states, states[1:], history)):
        for e0, e1, p1 in zip(leaves(prev.generator_ema), leaves(now.generator_ema),
                              leaves(now.generator)):
            np.testing.assert_allclose(e1, 0.99 * e0 + 0.01 * p1, rtol=1e-6, atol=1e-7)
        d_changed = any(not np.array_equal(a, b) for a, b in
                        zip(leaves(prev.discriminators), leaves(now.discriminators)))
        if n < GAN_START:
            assert not d_changed and m["adversarial"] == 0.0
            assert m["discriminator_loss"] == 0.0 and m["discriminator_grad_norm"] == 0.0
            assert all(np.array_equal(a, b) for a, b in zip(leaves(states[0].discriminator_opt),
                                                            leaves(now.discriminator_opt)))
        else:
            assert d_changed and m["adversarial"] > 0
            assert m["discriminator_loss"] > 0 and m["feature_matching"] > 0
    first, last = history[0], history[GAN_START - 1]
    stft = lambda h: h["spectral_convergence"] + h["log_magnitude"]
    assert stft(last) < 0.7 * stft(first), (first, last)
    assert last["spectral_convergence"] < first["spectral_convergence"]
    assert last["mel_l1"] < 0.3 * first["mel_l1"], (first, last)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_data_parallel_steps_match_one_device(fixed_batch_run, tmp_path):
    """With 8 simulated CPU devices, jit over the mesh and pmap give the
    parameters and losses one device gives, for the first GAN step (the
    generator-only step is its generator half): from the fixed-batch run's
    state at ``discriminator_start`` (trained until then, so that the crops'
    spectral convergences differ: a mean of per-device ratios would not be
    the batch's). The one-device step is that run's; the 8-device ones are a
    subprocess's, from the same state."""
    import pickle

    states, history = fixed_batch_run
    init, one = states[GAN_START], states[GAN_START + 1]
    metrics_one = history[GAN_START]
    assert metrics_one["discriminator_loss"] > 0
    with open(tmp_path / "init.pkl", "wb") as f:
        pickle.dump(init, f)
    script = os.path.join(ROOT, "tests", "scripts", "vocoder_data_parallel.py")
    out = subprocess.run([sys.executable, script, str(tmp_path / "init.pkl"),
                          str(tmp_path / "eight.pkl")],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "eight.pkl", "rb") as f:
        r = pickle.load(f)
    assert r["devices"] == 8
    for way in ("jit8", "pmap"):
        m = r[way][1]
        for k in COMPARED:
            assert abs(m[k] - metrics_one[k]) <= 1e-4 * abs(metrics_one[k]) + 1e-7, \
                (way, k, m, metrics_one)

    def diff(a, b):   # (max, mean) absolute difference over every parameter
        d = np.concatenate([np.asarray(x, np.float64).ravel() - np.asarray(y, np.float64).ravel()
                            for x, y in zip(jax.tree_util.tree_leaves(a),
                                            jax.tree_util.tree_leaves(b))])
        return float(np.max(np.abs(d))), float(np.mean(np.abs(d)))
    # Adam divides each gradient element by its own size: elements whose
    # gradient is rounding noise take full steps of either sign, so the largest
    # disagreement is a fraction of one step; on average the parameters agree
    # to 1e-3 of how far the step moved them (how many elements are noise
    # depends on the CPU's rounding: 1.4e-4 measured on one host, below 1e-4
    # on another; a step whose gradients were not averaged over the devices
    # would differ by about its whole movement).
    for name in ("generator", "discriminators"):
        moved = diff(getattr(one, name), getattr(init, name))
        for way in ("jit8", "pmap"):
            max_diff, mean_diff = diff(getattr(one, name), getattr(r[way][0], name))
            assert mean_diff < 1e-3 * moved[1] and max_diff < 0.05 * moved[0], \
                (name, way, max_diff, mean_diff, moved)


def test_rematerialised_gan_step_equals_the_stored_one():
    """``remat="all"``: the GAN step recomputes the generator's residual
    layers and each discriminator's hidden layers in its backward pass (on a
    TPU "auto" does the discriminators', to fit: ``test_tpu_compile.py``).
    The losses and updated weights are those of storing them."""
    batch = {k: jnp.asarray(v) for k, v in clip_batch().items()}
    init = vts.init_state(vocoder_config(), jax.random.PRNGKey(0))
    steps = {remat: vts.make_step(vocoder_config(remat=remat), None, True)
             for remat in ("none", "all")}
    checkpoints = {remat: sum(e.primitive.name in ("remat2", "checkpoint")
                              for e in jax.make_jaxpr(step)(init, batch).jaxpr.eqns)
                   for remat, step in steps.items()}
    # the generator's 2 x 4 residual layers and the 5 discriminators, twice each
    assert checkpoints["all"] >= checkpoints["none"] + 8 + 5, checkpoints
    stored, stored_metrics = jax.jit(steps["none"])(init, batch)
    recomputed, recomputed_metrics = jax.jit(steps["all"])(init, batch)
    for k in ("loss", "discriminator_loss", "feature_matching", "spectral_convergence"):
        np.testing.assert_allclose(recomputed_metrics[k], stored_metrics[k], rtol=1e-5)
    for name in ("generator", "discriminators"):
        for a, b in zip(jax.tree_util.tree_leaves(getattr(recomputed, name)),
                        jax.tree_util.tree_leaves(getattr(stored, name))):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run of 32 steps (discriminators on from step 30), and
    the same run stopped at 16 and resumed."""
    base = tmp_path_factory.mktemp("vocoder_runs")
    config = lambda steps: vocoder_config(num_steps=steps, eval_every=16, checkpoint_every=16)
    whole, split = str(base / "whole"), str(base / "split")
    final = vt.train_and_evaluate(config(32), whole)
    vt.train_and_evaluate(config(16), split)
    resumed = vt.train_and_evaluate(config(32), split)
    return {"whole": whole, "split": split, "final": final, "resumed": resumed,
            "config": config(32)}


def test_stopped_and_resumed_run_equals_uninterrupted(runs):
    a = jax.tree_util.tree_leaves(runs["final"])
    b = jax.tree_util.tree_leaves(runs["resumed"])
    assert len(a) == len(b) > 50
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_logs_losses_audio_and_spectrograms(runs):
    from tensorboard.backend.event_processing import event_accumulator as ea
    acc = ea.EventAccumulator(os.path.join(runs["whole"], "tensorboard"),
                              size_guidance={ea.IMAGES: 0, ea.AUDIO: 0, ea.SCALARS: 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("loss", "discriminator_loss", "learning_rate", "discriminator_learning_rate",
                "spectral_convergence", "log_magnitude", "mel_l1", "adversarial",
                "feature_matching", "grad_norm", "val/mel_l1", "val/lsd"):
        assert tag in tags["scalars"], tag
    assert {"mel/0/generated", "mel/0/real"} <= set(tags["images"])
    generated = acc.Audio("audio/0/generated")
    assert [a.step for a in generated] == [16, 32] and generated[0].length_frames == CROP
    assert [a.step for a in acc.Audio("audio/0/real")] == [16]
    adv = {e.step: e.value for e in acc.Scalars("adversarial")}
    assert sorted(adv) == list(range(1, 33))
    assert all(adv[s] == 0.0 for s in range(1, GAN_START + 1))
    assert all(adv[s] > 0 for s in range(GAN_START + 1, 33))
    with open(os.path.join(runs["whole"], "config.json")) as f:
        assert json.load(f)["generator"]["channels"] == 32


def test_command_line_trains_and_rejects_bad_settings(tmp_path, weights_dir):
    """``python -m train.vocoder``: a config file and overrides train and save;
    bad settings and an ``--init`` of the wrong size are one line each."""
    from vf_jax import config_files
    tiny = config_files.get_config("tfgan_tiny")
    assert tiny.generator.channels < 1024 and tiny.discriminator_start < tiny.num_steps
    config_file = os.path.join(ROOT, "tests", "scripts", "small_vocoder_config.py")
    workdir = str(tmp_path / "cli")

    def run(config, *args):
        return subprocess.run([sys.executable, "-m", "train.vocoder", "--config", config,
                               "--workdir", workdir, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=900)
    bad = run("configs/tfgan_tiny.py", "--config.no_such_key=1")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "no_such_key" in bad.stderr
    remat = run("configs/tfgan_tiny.py", "--config.remat=sometimes")
    assert remat.returncode == 1 and len(remat.stderr.strip().splitlines()) == 1, remat.stderr
    assert "remat" in remat.stderr
    wrong = run("configs/tfgan_tiny.py", "--init", weights_dir)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert "generator sizes" in wrong.stderr
    ok = run(config_file, "--config.num_steps=2", "--config.eval_every=0")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "2"))
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["num_steps"] == 2


# ------------------------------------------------------------- export ---

@pytest.fixture(scope="module")
def analysis_run(tmp_path_factory):
    """A tiny VF-DNN run (2 steps, no validation)."""
    from vf_jax import config_files
    from vf_jax.training.analysis import train as analysis_training
    c = config_files.get_config("tiny")
    c.num_steps, c.eval_every, c.quiet, c.checkpoint_every = 2, 0, True, 2
    c.crop_seconds, c.batch_size_per_device = 0.5, 2
    workdir = str(tmp_path_factory.mktemp("analysis_run") / "run")
    state = analysis_training.train_and_evaluate(c, workdir)
    return workdir, c, state


def test_export_trained_pair_restores(runs, analysis_run, tmp_path):
    """A trained analysis network and a trained vocoder become a weights
    folder the restorer loads; each half computes what it did in training."""
    from vf_jax.audio import mel as mel_lib
    from vf_jax.cli import main
    from vf_jax.commands import demo
    from vf_jax.restoration import networks
    from vf_jax.restoration.restorer import Restorer
    from vf_jax.training.analysis import train as analysis_training
    a_dir, a_config, a_state = analysis_run
    out = str(tmp_path / "pair")
    assert main(["export", "--analysis-workdir", a_dir, "--vocoder-workdir", runs["whole"],
                 "--out", out]) == 0
    restorer = Restorer.from_folder(out)
    assert restorer.meta["analysis"]["kind"] == "dnn"
    assert restorer.meta["vocoder"]["channels"] == 32
    wav = demo.load_clip()[:30000]
    restored = restorer.restore_full(wav, 44100)
    assert restored.audio.shape == (30000, 1) and np.all(np.isfinite(restored.audio))
    # Analysis half: the run's network on the same input.
    ref_mel = analysis_training.restore_log_mel(a_config, a_state, wav[None])[0]
    np.testing.assert_allclose(restored.log_mel[0], ref_mel, atol=1e-4)
    # Vocoder half: the folded EMA generator equals the weight-normed one.
    config, crop = runs["config"], clip_batch()["speech"][:1]
    trained = vts.make_generate(config)(runs["final"].generator_ema, jnp.asarray(crop))
    mel, _ = mel_lib.mel_spectrogram(jnp.asarray(crop), vts.FRONT_END)
    exported = networks.vocode(restorer.variables["vocoder"]["params"],
                              np.asarray(mel_lib.to_log(mel)), CROP,
                              networks.vocoder_size(restorer.meta))
    np.testing.assert_allclose(exported, np.asarray(trained), atol=1e-4)


def test_export_pairs_released_weights_with_a_trained_vocoder(runs, weights_dir, tmp_path):
    from vf_jax.cli import main
    from vf_jax.restoration.restorer import Restorer
    out = str(tmp_path / "pair")
    assert main(["export", "--analysis-workdir", weights_dir, "--vocoder-workdir",
                 runs["whole"], "--out", out, "--checkpoint", "latest"]) == 0
    restorer = Restorer.from_folder(out)
    assert restorer.meta["analysis"]["kind"] == "released"
    assert restorer.meta["provenance"]["vocoder"]["step"] == 32
    y = restorer.restore(np.sin(np.arange(20000) / 20).astype(np.float32) * 0.3, 44100)
    assert y.shape == (20000,) and np.all(np.isfinite(y))


@pytest.mark.parametrize("args,message", [
    (["--analysis-workdir", "MISSING"], "no such folder"),
    (["--checkpoint", "7"], "has no checkpoint 7"),
    (["--analysis-workdir", "VOCODER"], "not an analysis training run"),
])
def test_export_errors_are_one_line(runs, weights_dir, tmp_path, capsys, args, message):
    from vf_jax.cli import main
    argv = {"--analysis-workdir": weights_dir, "--vocoder-workdir": runs["whole"],
            "--out": str(tmp_path / "out")}
    for k, v in zip(args[::2], args[1::2]):
        argv[k] = {"MISSING": str(tmp_path / "missing"), "VOCODER": runs["whole"]}.get(v, v)
    code = main(["export"] + [x for kv in argv.items() for x in kv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0], err
    assert not os.path.exists(tmp_path / "out")


def test_fine_tuning_starts_from_the_published_vocoder(weights_dir):
    """``init_weights``: the converted vocoder, unfolded, is the generator the
    run starts from (and its EMA)."""
    from vf_jax import config_files
    from vf_jax.models import weight_norm
    from vf_jax.restoration import weights
    config = config_files.get_config("tfgan")
    params = vt.generator_from_weights(config, weights_dir)
    folded = weights.load(weights_dir)[0]["vocoder"]["params"]
    refolded = weight_norm.fold(params)
    for a, b in zip(jax.tree_util.tree_leaves(refolded), jax.tree_util.tree_leaves(folded)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(vt.UserError, match="generator sizes"):
        vt.generator_from_weights(vocoder_config(), weights_dir)
