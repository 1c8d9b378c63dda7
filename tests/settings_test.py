"""Settings as data: one declaration per setting, config files, overrides, per-mode help, and a
one-line refusal of a setting the mode does not use."""

import json
import pathlib
import subprocess
import sys

import pytest

from rppgedit import main, settings
from rppgedit.errors import RppgEditError
from rppgedit.modes import common

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def parse():
    def _parse(*args):
        main.FLAGS.unparse_flags()
        main.FLAGS(["rppgedit", *args])
        return settings.resolve(main.FLAGS)

    yield _parse
    main.FLAGS.unparse_flags()


def test_every_setting_has_one_name_one_path_and_a_mode():
    names = [s.name for s in settings.SETTINGS]
    paths = [s.path for s in settings.SETTINGS]
    assert len(set(names)) == len(names) and len(set(paths)) == len(paths)
    for s in settings.SETTINGS:
        assert s.modes and set(s.modes) <= set(settings.MODES), s.name
        assert s.help.strip(), s.name
    # lambda has one name on the command line: the grid axis and the single value.
    assert {n for n in names if "lambda" in n} == set()
    assert "fidelity_weight" in names and "fidelity_weights" in names


def test_a_setting_the_mode_does_not_use_is_refused_by_name(parse):
    with pytest.raises(RppgEditError, match=r"--synthetic_seeds is not used by --mode=edit"):
        parse("--mode=edit", "--synthetic_seeds=1,2")
    with pytest.raises(RppgEditError, match=r"--demo_dir, --train_seed are not used"):
        parse("--mode=sweep", "--demo_dir=x", "--train_seed=3")
    assert parse("--mode=sweep", "--synthetic_seeds=1,2").synthetic_seeds == [1, 2]


def test_number_lists_are_parsed_for_every_mode(parse):
    with pytest.raises(RppgEditError, match="--fidelity_weights: not a list of numbers"):
        parse("--mode=experiment", "--experiment=lambda_sweep", "--fidelity_weights=abc")
    with pytest.raises(RppgEditError, match="--target_hrs: numbers must be finite"):
        parse("--mode=sweep", "--target_hrs=nan")
    assert parse("--mode=experiment").target_hrs == [60.0, 80.0, 100.0, 120.0]  # mode default
    assert parse("--mode=sweep").target_hrs == [120.0]


def test_window_zero_resolves_to_the_targets_window_and_a_given_window_stays(parse):
    assert parse("--mode=edit").window == 128
    assert parse("--mode=edit", "--target=none").window == 256
    assert parse("--mode=edit", "--window=0", "--target=none").window == 256
    assert parse("--mode=edit", "--window=64", "--target=none").window == 64


def test_config_file_then_flagfile_then_command_line(tmp_path, parse):
    config = tmp_path / "c.py"
    config.write_text(
        "def get_config():\n"
        "    return {'mode': 'edit', 'editor': {'steps': 7, 'fidelity_weight': 2.0},\n"
        "            'target_hr': 90, 'seed': 3}\n"
    )
    flagfile = tmp_path / "f.flags"
    flagfile.write_text(f"--config={config}\n--seed=4\n")
    s = parse(f"--flagfile={flagfile}", "--fidelity_weight=5")
    assert s.mode == "edit"
    assert (s.steps, s.target_hr, s.seed, s.fidelity_weight) == (7, 90.0, 4, 5.0)
    job = common.job(s)
    assert dict(job.method_options)["steps"] == 7 and job.target.hr_bpm == 90.0
    tree = s.tree()
    assert tree["editor"]["steps"] == 7 and tree["target"]["hr_bpm"] == 90.0
    assert "train" not in tree and "sweep" not in tree  # only what the mode uses


@pytest.mark.parametrize(
    "body,needle",
    [
        (
            "def get_config():\n    return {'editor': {'stepz': 3}}\n",
            "unknown setting 'editor.stepz'",
        ),
        ("def get_config():\n    return {'steps': 'many'}\n", "setting 'steps'"),
        ("x = 1\n", "defines no get_config()"),
        ("def get_config():\n    raise KeyError('k')\n", "cannot run it: KeyError"),
    ],
)
def test_bad_config_files_get_one_line_naming_the_file(tmp_path, parse, body, needle):
    config = tmp_path / "bad.py"
    config.write_text(body)
    with pytest.raises(RppgEditError) as err:
        parse("--mode=edit", f"--config={config}")
    assert str(config) in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_shipped_flagfiles_resolve_for_their_mode(parse):
    for path in sorted((ROOT / "experiments").glob("*.flags")):
        s = parse(f"--flagfile={path}")
        assert s.mode in settings.MODES
        json.dumps(s.tree())  # the resolved configuration is JSON


def _help(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "rppgedit.main", *args], capture_output=True, text=True, timeout=60
    )
    return proc


def test_help_lists_one_mode_common_settings_first():
    proc = _help("edit", "--help")
    assert proc.returncode == 0, proc.stderr
    listed = [
        line.split(":")[0].strip() for line in proc.stdout.splitlines() if line.startswith("  --")
    ]
    assert len(listed) <= 44  # what editing uses, not the 90 settings of every mode
    assert listed[:2] == ["--input", "--output"]
    assert "--synthetic_seeds" not in listed and "--train_vae_steps" not in listed
    overview = _help("--help")
    assert overview.returncode == 0 and all(m in overview.stdout for m in settings.MODES)
    assert _help("--mode=nosuch", "--help").returncode == 1


def test_a_mode_word_first_is_the_mode():
    assert main.command_line(["rppgedit", "edit", "--input=a"]) == [
        "rppgedit",
        "--mode=edit",
        "--input=a",
    ]
    assert main.command_line(["rppgedit", "--mode=edit"]) == ["rppgedit", "--mode=edit"]
    proc = _help("sweep", "--demo_dir=x")
    assert proc.returncode == 1 and "--demo_dir is not used by --mode=sweep" in proc.stderr
