"""The command line's persistent JAX compilation cache: where it lives and how it is turned off."""

import subprocess
import sys

from rppgedit import main


def test_cache_dir_from_the_environment(tmp_path):
    assert main.jax_cache_dir({"RPPGEDIT_JAX_CACHE": "off"}) is None
    assert main.jax_cache_dir({"RPPGEDIT_JAX_CACHE": "OFF "}) is None
    assert main.jax_cache_dir({"RPPGEDIT_JAX_CACHE": str(tmp_path)}) == str(tmp_path)
    xdg = {"XDG_CACHE_HOME": str(tmp_path)}
    assert main.jax_cache_dir(xdg) == str(tmp_path / "rppgedit" / "jax")
    assert main.jax_cache_dir({}).endswith(".cache/rppgedit/jax")


def test_second_process_loads_what_the_first_compiled(tmp_path):
    """Two processes compile the same function: the first writes the cache, the second reads it."""
    cache = tmp_path / "jax"
    code = (
        "import jax, jax.numpy as jnp\n"
        "from rppgedit import main\n"
        "main.enable_compilation_cache(main.jax_cache_dir())\n"
        "hits = []\n"
        "jax.monitoring.register_event_listener(\n"
        "    lambda name, **kw: hits.append(name == '/jax/compilation_cache/cache_hits'))\n"
        "print(float(jax.jit(lambda x: jnp.sin(x) * 3 + 1)(jnp.arange(7.0)).sum()))\n"
        "print('hits', sum(hits))\n"
    )
    env = {"RPPGEDIT_JAX_CACHE": str(cache), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert any(cache.iterdir())
    assert runs[0].stdout.split()[0] == runs[1].stdout.split()[0]
    assert "hits 0" in runs[0].stdout and "hits 0" not in runs[1].stdout
    env["RPPGEDIT_JAX_CACHE"] = "off"
    off = subprocess.run(
        [sys.executable, "-c", code.replace(str(cache), "")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert off.returncode == 0 and "hits 0" in off.stdout


def test_an_entry_without_its_access_time_does_not_stop_the_cache(tmp_path):
    """JAX's size-limited cache reads every entry's access time before it writes; one missing (a
    process killed between the two writes) made every later write fail, so nothing new was
    cached. The command line gives such entries a time before it enables the cache."""
    cache = tmp_path / "jax"
    cache.mkdir()
    orphan = cache / "jit_old-0123-cache"
    orphan.write_bytes(b"an entry whose time was never written")
    code = (
        "import jax, jax.numpy as jnp\n"
        "from rppgedit import main\n"
        "main.enable_compilation_cache(main.jax_cache_dir())\n"
        "print(float(jax.jit(lambda x: jnp.cos(x) * 5 - 2)(jnp.arange(3.0)).sum()))\n"
    )
    env = {"RPPGEDIT_JAX_CACHE": str(cache), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (cache / "jit_old-0123-atime").exists()
    written = [p.name for p in cache.glob("*-cache") if p != orphan]
    assert written, run.stderr  # the new program was cached
    assert "Error writing persistent compilation cache" not in run.stderr
