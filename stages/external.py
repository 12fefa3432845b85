"""DVC stage `external`: another hospital's images, copied or generated, cached like Kermany's."""

import argparse

from cxr.atomic import write_json
from cxr.commands import run_stage
from cxr.external import materialise_external, write_external_cache
from cxr.params import load_params
from cxr.prepared import read_preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="folder written by `prepare`")
    parser.add_argument("--raw", required=True, help="folder for the external images")
    parser.add_argument("--out", required=True, help="folder for external.npy and manifest.csv")
    parser.add_argument("--report", required=True, help="external data report (JSON)")
    args = parser.parse_args()
    params = load_params()
    report = materialise_external(params["external"], params["data"]["synthetic"]["lesion_gain"],
                                  args.raw)
    report["images"] = write_external_cache(args.raw, args.out, read_preprocess(args.data),
                                            params["prepare"]["workers"])
    write_json(args.report, report)


if __name__ == "__main__":
    run_stage(main)
