"""The experiment summary groups finished runs by recipe variant and computes the right
numbers; queued, running and failed experiments do not count."""

import json

import pytest

from cxr.experiments import main, runs, summary


def node(rev: str, seed: int, epochs: int, auc: float, loss: float) -> dict:
    metrics = {"metrics/cnn11.json": {"data": {"val_in_sample": {"roc_auc": auc,
                                                                 "log_loss": loss},
                                               "test": {"accuracy": auc - 0.1}}}}
    params = {"seed": seed, "cnn11": {"epochs": epochs, "augment": {"hflip": 0.5}}}
    return {"rev": rev, "name": None,
            "data": {"params": {"params.yaml": {"data": params}}, "metrics": metrics}}


def experiment(state: str | None, seed: int, epochs: int, auc: float, loss: float) -> dict:
    executor = None if state is None else {"state": state}
    return {"executor": executor, "name": f"exp{seed}-{epochs}",
            "revs": [node(f"e{seed}{epochs}" * 8, seed, epochs, auc, loss)]}


@pytest.fixture
def exp_show() -> list[dict]:
    commit = node("c" * 40, 42, 10, 0.90, 0.30)
    commit["experiments"] = [
        experiment(None, 1, 10, 0.92, 0.20),     # finished (DVC drops the executor)
        experiment("success", 2, 10, 0.94, 0.25),
        experiment("success", 42, 20, 0.97, 0.10),
        experiment("success", 1, 20, 0.95, 0.12),
        experiment("running", 3, 10, 0.90, 0.30),  # shows the parent's metrics while it runs
        experiment("queued", 4, 20, 0.90, 0.30),
        experiment("failed", 5, 20, 0.10, 9.0),
    ]
    return [{"rev": "workspace", "data": {}}, commit]


def test_runs_are_grouped_by_variant_and_only_finished_ones_count(exp_show):
    all_runs = runs(exp_show)
    assert [(r["variant"], r["seed"]) for r in all_runs] == [
        ("(params.yaml)", 42), ("(params.yaml)", 1), ("(params.yaml)", 2),
        ("cnn11.epochs=20", 42), ("cnn11.epochs=20", 1)]
    table = summary(all_runs, ("cnn11",), ("val_in_sample.roc_auc", "val_in_sample.log_loss",
                                           "test.accuracy")).splitlines()
    assert table[0] == "### cnn11"
    # default: AUC mean of 0.90, 0.92, 0.94; log loss of 0.30, 0.20, 0.25
    assert table[4] == ("| (params.yaml) | 3 | 42, 1, 2 | 0.9200 (0.9000–0.9400) | "
                        "0.2500 (0.2000–0.3000) | 0.8200 (0.8000–0.8400) |")
    assert table[5] == ("| cnn11.epochs=20 | 2 | 42, 1 | 0.9600 (0.9500–0.9700) | "
                        "0.1100 (0.1000–0.1200) | 0.8600 (0.8500–0.8700) |")
    assert len(table) == 6  # models without these metrics get no table


def test_command_reads_a_saved_exp_show(exp_show, tmp_path, capsys):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(exp_show))
    assert main(["--from", str(path), "--model", "cnn11", "--metric", "test.accuracy"]) == 0
    assert "| cnn11.epochs=20 | 2 | 42, 1 | 0.8600 (0.8500–0.8700) |" in capsys.readouterr().out
    assert main(["--from", str(path), "--model", "baseline"]) == 2
    assert "no finished run" in capsys.readouterr().err
