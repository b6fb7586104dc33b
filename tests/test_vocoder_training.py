"""Training the vocoder: losses fall, EMA, discriminator start, data-parallel
equivalence, exact resume, logs, the command line, export and restore."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vf_jax import vocoder_train_step as vts  # noqa: E402
from vf_jax import vocoder_training as vt  # noqa: E402

CROP = 4410


def small_config(**overrides):
    """The tiny config, smaller still: trains a step in ~10 ms on a CPU."""
    c = vt.tiny_config()
    c.generator.update({"channels": 32, "cond_channels": 16, "resstack_depth": 2})
    c.discriminators.update({"waveform_channels": 4, "max_channels": 16,
                             "spectrogram_channels": 4})
    c.crop_seconds = CROP / 44100
    c.batch_size_per_device = 2
    c.eval_examples, c.eval_batch_size_per_device = 2, 2
    c.log_every, c.quiet = 1, True
    for k, v in overrides.items():
        c[k] = v
    return c


def clip_batch(n=2):
    """Fixed crops of the shipped clip (real speech)."""
    from vf_jax import demo
    clip = demo.load_clip()
    speech = np.stack([clip[44100 + i * 9000:44100 + i * 9000 + CROP] for i in range(n)])
    return {"speech": speech.astype(np.float32), "speech_length": np.full((n,), CROP, np.int32)}


def test_multi_resolution_stft_loss_falls_on_a_fixed_set():
    config = small_config(discriminator_start=10 ** 6)
    state = vts.init_state(config, jax.random.PRNGKey(0))
    step = jax.jit(vts.make_step(config))
    batch = {k: jnp.asarray(v) for k, v in clip_batch().items()}
    history = []
    for _ in range(60):
        state, m = step(state, batch)
        history.append({k: float(v) for k, v in m.items()})
    first, last = history[0], history[-1]
    stft = lambda h: h["spectral_convergence"] + h["log_magnitude"]
    assert stft(last) < 0.6 * stft(first), (first, last)
    assert last["mel_l1"] < 0.3 * first["mel_l1"]
    assert all(h["adversarial"] == 0 and h["discriminator_loss"] == 0 for h in history)


def test_ema_and_discriminator_start():
    config = small_config(discriminator_start=2)
    state = vts.init_state(config, jax.random.PRNGKey(0))
    step = jax.jit(vts.make_step(config))
    batch = {k: jnp.asarray(v) for k, v in clip_batch().items()}
    leaves = jax.tree_util.tree_leaves
    before = jax.device_get(state)
    for n in range(1, 4):
        prev = jax.device_get(state)
        state, m = step(state, batch)
        now = jax.device_get(state)
        # EMA: 0.99 * previous EMA + 0.01 * the new weights.
        for e0, e1, p1 in zip(leaves(prev.generator_ema), leaves(now.generator_ema),
                              leaves(now.generator)):
            np.testing.assert_allclose(e1, 0.99 * e0 + 0.01 * p1, rtol=1e-6, atol=1e-7)
        d_changed = any(not np.array_equal(a, b) for a, b in
                        zip(leaves(prev.discriminators), leaves(now.discriminators)))
        if n <= 2:   # steps 0 and 1: generator only; discriminators untouched
            assert not d_changed and float(m["adversarial"]) == 0.0
            assert all(np.array_equal(a, b) for a, b in zip(
                leaves(before.discriminator_opt), leaves(now.discriminator_opt)))
        else:        # from step 2 on: LSGAN updates and losses
            assert d_changed and float(m["adversarial"]) > 0
            assert float(m["discriminator_loss"]) > 0 and float(m["feature_matching"]) > 0


def test_data_parallel_steps_match_one_device():
    """With 8 simulated CPU devices, jit over the mesh and pmap give the
    parameters one device gives, discriminators on from the second step."""
    script = textwrap.dedent(f"""
        import json, sys
        import jax
        jax.config.update("jax_num_cpu_devices", 8)
        sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, "tests")!r}]
        import numpy as np
        from test_vocoder_training import small_config, clip_batch
        from vf_jax import parallel
        from vf_jax import vocoder_train_step as vts
        # The generator's gradients reach 1e5 and more (log magnitudes of
        # near-silent output), so summation-order rounding is large in absolute
        # terms; a large Adam epsilon makes the update linear in the gradient
        # instead of amplifying that rounding into sign-sized steps.
        config = small_config(discriminator_start=1, eps=1e3)
        batch = clip_batch(8)
        init = vts.init_state(config, jax.random.PRNGKey(0))
        def run(devices):
            mesh = parallel.make_mesh(jax.devices()[:devices])
            step = parallel.jit_step(vts.make_step(config), mesh)
            state = parallel.place_replicated(jax.tree_util.tree_map(lambda x: x.copy(), init),
                                              mesh)
            for _ in range(2):
                state, m = step(state, parallel.global_batch(batch, mesh))
            return state, float(m["loss"])
        one, loss_one = run(1)
        eight, loss_eight = run(8)
        pstep = parallel.pmap_step(vts.make_step(config, parallel.AXIS))
        state = parallel.replicate(init)
        local = {{k: v.reshape(8, 1, *v.shape[1:]) for k, v in batch.items()}}
        for _ in range(2):
            state, m = pstep(state, local)
        pm = jax.tree_util.tree_map(lambda x: x[0], state)
        diff = lambda a, b: max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                                for x, y in zip(jax.tree_util.tree_leaves(a),
                                                jax.tree_util.tree_leaves(b)))
        print(json.dumps({{"devices": len(jax.devices()),
                          "gen_jit8": diff(one.generator, eight.generator),
                          "gen_pmap": diff(one.generator, pm.generator),
                          "disc_jit8": diff(one.discriminators, eight.discriminators),
                          "disc_pmap": diff(one.discriminators, pm.discriminators),
                          "loss": [loss_one, loss_eight, float(m["loss"][0])]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == 8
    assert max(r["gen_jit8"], r["gen_pmap"], r["disc_jit8"], r["disc_pmap"]) < 1e-5, r
    assert max(r["loss"]) - min(r["loss"]) < 1e-4 * max(r["loss"]), r


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run of 4 steps, and the same run stopped at 2 and resumed."""
    base = tmp_path_factory.mktemp("vocoder_runs")
    config = lambda steps: small_config(num_steps=steps, discriminator_start=2, eval_every=2,
                                        checkpoint_every=2)
    whole, split = str(base / "whole"), str(base / "split")
    final = vt.train_and_evaluate(config(4), whole)
    vt.train_and_evaluate(config(2), split)
    resumed = vt.train_and_evaluate(config(4), split)
    return {"whole": whole, "split": split, "final": final, "resumed": resumed,
            "config": config(4)}


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
    assert [a.step for a in generated] == [2, 4] and generated[0].length_frames == CROP
    assert [a.step for a in acc.Audio("audio/0/real")] == [2]
    adv = [e.value for e in acc.Scalars("adversarial")]
    assert adv[:2] == [0.0, 0.0] and all(v > 0 for v in adv[2:])
    with open(os.path.join(runs["whole"], "config.json")) as f:
        assert json.load(f)["generator"]["channels"] == 32


def test_command_line_trains_and_rejects_bad_settings(tmp_path):
    workdir = str(tmp_path / "cli")
    cmd = [sys.executable, "-m", "train.vocoder", "--config", "configs/tfgan_tiny.py",
           "--workdir", workdir]
    bad = subprocess.run(cmd + ["--config.no_such_key=1"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "no_such_key" in bad.stderr
    ok = subprocess.run(cmd + ["--config.num_steps=2", "--config.eval_every=0",
                               "--config.crop_seconds=0.1", "--config.batch_size_per_device=1",
                               "--config.quiet=True"],
                        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "2"))


# ------------------------------------------------------------- export ---

@pytest.fixture(scope="module")
def analysis_run(tmp_path_factory):
    """A tiny VF-DNN run (2 steps, no validation)."""
    from configs.tiny import get_config
    from vf_jax import analysis_training
    c = get_config()
    c.num_steps, c.eval_every, c.quiet, c.checkpoint_every = 2, 0, True, 2
    c.crop_seconds, c.batch_size_per_device = 0.5, 2
    workdir = str(tmp_path_factory.mktemp("analysis_run") / "run")
    state = analysis_training.train_and_evaluate(c, workdir)
    return workdir, c, state


def test_export_trained_pair_restores(runs, analysis_run, tmp_path):
    """A trained analysis network and a trained vocoder become a weights
    folder the restorer loads; each half computes what it did in training."""
    from vf_jax import analysis_training, demo, restore
    from vf_jax import mel as mel_lib
    from vf_jax.cli import main
    a_dir, a_config, a_state = analysis_run
    out = str(tmp_path / "pair")
    assert main(["export", "--analysis-workdir", a_dir, "--vocoder-workdir", runs["whole"],
                 "--out", out]) == 0
    restorer = restore.Restorer.from_folder(out)
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
    exported = restore.vocode(restorer.variables["vocoder"]["params"],
                              np.asarray(mel_lib.to_log(mel)), CROP,
                              restore.vocoder_size(restorer.meta))
    np.testing.assert_allclose(exported, np.asarray(trained), atol=1e-4)


def test_export_pairs_released_weights_with_a_trained_vocoder(runs, weights_dir, tmp_path):
    from vf_jax import restore
    from vf_jax.cli import main
    out = str(tmp_path / "pair")
    assert main(["export", "--analysis-workdir", weights_dir, "--vocoder-workdir",
                 runs["whole"], "--out", out, "--checkpoint", "latest"]) == 0
    restorer = restore.Restorer.from_folder(out)
    assert restorer.meta["analysis"]["kind"] == "released"
    assert restorer.meta["provenance"]["vocoder"]["step"] == 4
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
    from vf_jax import weight_norm, weights
    config = vt.base_config()
    params = vt.generator_from_weights(config, weights_dir)
    folded = weights.load(weights_dir)[0]["vocoder"]["params"]
    refolded = weight_norm.fold(params)
    for a, b in zip(jax.tree_util.tree_leaves(refolded), jax.tree_util.tree_leaves(folded)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(vt.UserError, match="generator sizes"):
        vt.generator_from_weights(small_config(), weights_dir)
