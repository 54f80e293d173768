"""The plumbing every command shares: results written whole, and the engine's advice in the command's flags."""

from __future__ import annotations

import json

import pytest

from envs.specdec.errors import SpecGymError
from envs.specdec.files import leftovers
from experiments.cli import CommandParser, cli_words, run_main, write_json

FLAGS = ["--pair", "--width", "--max-depth", "--n-items", "--rate", "--reward", "--n-prompts", "--split"]


@pytest.mark.parametrize(
    ("engine", "cli"),
    [
        (
            "recorded for pair 'tiny-random'; pass pair='tiny-random'",
            "recorded for pair 'tiny-random'; pass --pair tiny-random",
        ),
        ("width 1, not 3; pass width=1 or record", "width 1, not 3; pass --width 1 or record"),
        ("pass max_depth <= 8 or record with --max-depth 30", "pass --max-depth <= 8 or record with --max-depth 30"),
        ("n_items must be an integer >= 1, got 0", "--n-items must be an integer >= 1, got 0"),
        ("rate must be > 0 tokens/s", "--rate must be > 0 tokens/s"),
        ("drop rate or pass reward='net_tokens'", "drop rate or pass --reward net_tokens"),
        ("holds 3 prompts; pass n_prompts <= that", "holds 3 prompts; pass --n-prompts <= that"),
        ("pass split='held out'", "pass --split 'held out'"),  # quoted as a shell needs it
        # left as they are: prose, a product, a path, flags, and a keyword this command has no flag for
        ("the pair must be built", "the pair must be built"),
        ("size in 0..depth*width=8", "size in 0..depth*width=8"),
        ("file '/tmp/a=b/width=2.npz'", "file '/tmp/a=b/width=2.npz'"),
        ("record with --width 3", "record with --width 3"),
        ("speed_weight must be a number; pass dtype='float32'", "speed_weight must be a number; pass dtype='float32'"),
    ],
)
def test_engine_advice_is_worded_as_the_commands_flags(engine, cli):
    assert cli_words(engine, FLAGS) == cli
    assert cli_words(engine, []) == engine  # the Python API's words where no command parsed flags


def test_run_main_words_errors_in_the_flags_the_command_parsed(capsys):
    def main(argv):
        parser = CommandParser(prog="cmd")
        sub = parser.add_subparsers(dest="command", required=True).add_parser("env")
        sub.add_argument("--max-depth", type=int)  # a subcommand's flags count too
        parser.parse_args(argv)
        raise SpecGymError("trace holds trees to depth 8, not 30; pass max_depth <= 8, or pass width=2")

    with pytest.raises(SystemExit) as exited:
        run_main(main, ["env", "--max-depth", "30"])
    assert exited.value.code == 2
    # --width is no flag of this command: its keyword stays
    assert (
        capsys.readouterr().err
        == "error: trace holds trees to depth 8, not 30; pass --max-depth <= 8, or pass width=2\n"
    )


def test_results_json_is_written_whole(tmp_path, monkeypatch):
    path = tmp_path / "out" / "results.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and not leftovers(path)

    def interrupted(src, dst):
        raise KeyboardInterrupt  # Ctrl-C between writing and renaming

    monkeypatch.setattr("envs.specdec.files.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1} and not leftovers(path)  # the earlier results stand
    write_json(None, {"a": 3})  # no --out: nothing written
