from cxr.seeds import aggregate, runs


def node(rev: str, seed: int, acc: float | None) -> dict:
    metrics = {} if acc is None else {"metrics/cnn11.json": {"data": {"test": {"accuracy": acc}}}}
    return {"rev": rev, "name": None,
            "data": {"params": {"params.yaml": {"data": {"seed": seed}}}, "metrics": metrics}}


def experiment(state: str | None, seed: int, acc: float) -> dict:
    executor = None if state is None else {"state": state}
    return {"executor": executor, "name": f"exp{seed}", "revs": [node(f"e{seed}" * 8, seed, acc)]}


def test_only_finished_runs_count_and_the_numbers_are_right():
    commit = node("c" * 40, 42, 0.80)
    commit["experiments"] = [
        experiment(None, 1, 0.84),          # finished (DVC drops the executor)
        experiment("success", 2, 0.86),
        experiment("running", 3, 0.80),     # shows the parent's metrics while it runs
        experiment("queued", 4, 0.80),
        experiment("failed", 5, 0.10),
    ]
    all_runs = runs([{"rev": "workspace", "data": {}}, commit])
    assert [r["seed"] for r in all_runs] == [42, 1, 2]
    table = aggregate(all_runs, "test.accuracy").splitlines()
    # mean of 0.80, 0.84, 0.86 = 0.8333; sample sd = 0.0306
    assert table[2] == "| cnn11 | 3 | 42, 1, 2 | 0.8333 | 0.0306 |"
    assert len(table) == 3  # models without the metric get no row
